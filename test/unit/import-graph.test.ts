// The house layering holds: no upward import, no import cycle, no source file over 400 lines in
// src/ and drivers/ (the order is ./import-graph.ts's LAYERS), no front end that imports drivers/.
// The checker itself is tried on small made-up graphs first, so that a pass means something.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cycles, frontEndDriverImports, importsOf, longFiles, readGraph, upwardImports, type Graph } from './import-graph.js';

const root = path.resolve(__dirname, '../..');

describe('import-graph checker', () => {
  it('reads static, type, re-export, side-effect and dynamic imports', () => {
    const text = [
      "import fs from 'node:fs';",
      "import type { A } from '../contract/driver.js';",
      "import {\n  b,\n  c,\n} from './b.js';",
      "export { d } from '../ip/index.js';",
      "import './side.js';",
      "const m = await import('./api/docker/index.js');",
    ].join('\n');
    expect(importsOf(text)).toEqual(['../contract/driver.js', './b.js', '../ip/index.js', './side.js', './api/docker/index.js']);
  });

  it('finds an upward import, an unknown layer and a cycle', () => {
    const g: Graph = new Map([
      ['src/contract/driver.ts', ['src/controller/controller.ts']],
      ['src/controller/controller.ts', ['src/controller/endpoints.ts']],
      ['src/controller/endpoints.ts', ['src/controller/controller.ts']],
      ['src/newthing/x.ts', ['src/errors.ts']],
      ['drivers/bridge/index.ts', ['src/contract/driver.ts']],
    ]);
    expect(upwardImports(g)).toEqual([
      'src/contract/driver.ts → src/controller/controller.ts (contract sits below controller)',
      'src/newthing/x.ts → src/errors.ts (layer newthing is not in LAYERS)',
    ]);
    expect(cycles(g)).toEqual([['src/controller/controller.ts', 'src/controller/endpoints.ts']]);
  });
});

describe('the repository', () => {
  const graph = readGraph(root, ['src', 'drivers']);

  it('has no import that runs to a higher layer', () => {
    expect(graph.size).toBeGreaterThan(100);
    expect(upwardImports(graph)).toEqual([]);
  });

  it('has no front end that imports a driver (a new driver needs no change to the API or the CLI)', () => {
    expect(frontEndDriverImports(graph)).toEqual([]);
  });

  it('has no import cycle', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('has no source file over 400 lines', () => {
    expect(longFiles(root, graph)).toEqual([]);
  });
});
