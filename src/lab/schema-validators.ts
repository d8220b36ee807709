// The topology schemas' validators, compiled with ajv when first used. The bundle replaces this
// module with the same validators compiled at build time (scripts/build-schemas.ts), so that the
// bundled `lab` commands neither load ajv nor compile (~50 ms of each `lab up` before it starts).
import { Ajv, type ValidateFunction } from 'ajv';
import clabSchema from './clab.schema.json' with { type: 'json' };
import topologySchema from './topology.schema.json' with { type: 'json' };

export type LabFormat = 'cnmkit' | 'containerlab';

// validateSchema off: checking the two schemas against ajv's meta-schema took ~0.15 s of every
// `lab up`; they are ours and fixed, and test/unit/lab-topology.test.ts checks them instead.
// ajv's optimizer off: from the sources the validator runs once per command, and its passes were
// ~40% of the compile.
export const AJV_OPTIONS = { allErrors: true, strict: true, allowUnionTypes: true, verbose: true, validateSchema: false, code: { optimize: false } } as const;
export const SCHEMAS = { cnmkit: topologySchema, containerlab: clabSchema } as const;

let ajv: Ajv | undefined;
const validators = new Map<LabFormat, ValidateFunction>();

export function validatorFor(format: LabFormat): ValidateFunction {
  let v = validators.get(format);
  if (!v) {
    v = (ajv ??= new Ajv(AJV_OPTIONS)).compile(SCHEMAS[format]);
    validators.set(format, v);
  }
  return v;
}
