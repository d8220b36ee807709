// Reads a topology file: YAML parsed with `yaml` keeping each node's position, so that every
// later check (schema, references, addresses) can name the file, line and field of a problem.
// Limits: one YAML document per file; anchors and merge keys are resolved by `yaml`.
import fs from 'node:fs';
import path from 'node:path';
import { isMap, isPair, isScalar, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { LabFileError, type LabFileProblem } from '../errors.js';

export type FieldPath = ReadonlyArray<string | number>;

/** A parsed file: its data and the way back from a field to its line. */
export interface LabSource {
  file: string;
  /** The file name as errors show it (relative to the working directory when inside it). */
  shown: string;
  data: unknown;
  /** The line of the field at path, or of its nearest parent that exists in the file. */
  lineOf(path: FieldPath, opts?: { key?: boolean }): number;
  /** A problem at path, ready for a LabFileError. */
  problem(path: FieldPath, reason: string, opts?: { key?: boolean }): LabFileProblem;
}

/** nodes.a.networks[1] */
export function fieldName(p: FieldPath): string {
  return p.reduce<string>((s, k) => (typeof k === 'number' ? `${s}[${k}]` : s ? `${s}.${k}` : k), '');
}

function shownName(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith('..') ? rel : file;
}

function nodeAt(doc: Document, p: FieldPath, key: boolean): Node | undefined {
  for (let n = p.length; n >= 0; n--) {
    const parent = n > 0 ? doc.getIn(p.slice(0, n - 1), true) : undefined;
    if (key && n === p.length && n > 0 && isMap(parent)) {
      const pair = parent.items.find((it) => isPair(it) && isScalar(it.key) && String(it.key.value) === String(p[n - 1]));
      if (pair && isScalar(pair.key)) return pair.key;
    }
    const node = n === 0 ? (doc.contents as Node | null) : doc.getIn(p.slice(0, n), true);
    if (node && typeof node === 'object' && 'range' in node && node.range) return node as Node;
  }
  return undefined;
}

/** Parses YAML text; YAML syntax errors become a LabFileError with their lines. */
export function parseSource(file: string, text: string): LabSource {
  const shown = shownName(file);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new LabFileError(doc.errors.map((e) => ({
      file: shown, line: e.linePos?.[0].line ?? (e.pos[0] >= 0 ? lines.linePos(e.pos[0]).line : 0), field: '',
      // The library's own advice for a second document names its API; a topology is one document.
      reason: e.code === 'MULTIPLE_DOCS' ? 'YAML: the file holds several documents (separated by ---); a topology is one' : `YAML: ${e.message.split('\n')[0]}`,
    })));
  }
  if (doc.contents === null) throw new LabFileError([{ file: shown, line: 1, field: '', reason: 'the file is empty: a topology has at least a name and nodes' }]);
  const lineOf = (p: FieldPath, opts: { key?: boolean } = {}): number => {
    const node = nodeAt(doc, p, opts.key ?? false);
    return node?.range ? lines.linePos(node.range[0]).line : 0;
  };
  return {
    file, shown, data: doc.toJS({ maxAliasCount: 1000 }), lineOf,
    problem: (p, reason, opts) => ({ file: shown, line: lineOf(p, opts), field: fieldName(p), reason }),
  };
}

/** Reads and parses the file at file. */
export function readSource(file: string): LabSource {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch (err) {
    throw new LabFileError([{ file, line: 0, field: '', reason: `cannot read the file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]);
  }
  return parseSource(abs, text);
}
