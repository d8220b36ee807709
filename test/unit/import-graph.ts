// The layering of src/ and drivers/, written down once, and the checks the import-graph test
// runs over it: no import runs to a higher layer, no import cycle between files, no file over
// the house limit. Imports are read with a regular expression (static, re-export and dynamic).
import fs from 'node:fs';
import path from 'node:path';

/**
 * Layers from the bottom up; a file may import its own layer and the ones below. A layer is a
 * folder (or a top-level file) of src/, or drivers/. Front ends (api, then daemon, cli and lab)
 * call only the controller and what sits below it.
 */
export const LAYERS: string[][] = [
  ['errors', 'defaults', 'version'],
  ['ip', 'core'],
  ['netns'],
  ['netlink'],
  ['firewall'],
  ['portmap'],
  ['store'],
  ['ipam'],
  ['cluster'],
  ['links', 'sandbox-config'],
  ['contract'],
  ['drivers'],
  ['controller'],
  ['api'],
  ['daemon'],
  ['cli', 'lab'],
];

export const MAX_LINES = 400;

const IMPORT_RE = /(?:^|\n)\s*(?:import|export)\s[^;'"]*?from\s*'([^']+)'|(?:^|\n)\s*import\s*'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/g;

/** Relative imports of one file's text, as written. */
export function importsOf(text: string): string[] {
  return [...text.matchAll(IMPORT_RE)].map((m) => (m[1] ?? m[2] ?? m[3])!).filter((s) => s.startsWith('.'));
}

/** The layer of a repository-relative path (src/x/…, src/x.ts, drivers/…), or undefined outside them. */
export function layerOf(file: string): string | undefined {
  const parts = file.split('/');
  if (parts[0] === 'drivers') return 'drivers';
  if (parts[0] !== 'src' || parts.length < 2) return undefined;
  return parts.length === 2 ? parts[1]!.replace(/\.ts$/, '') : parts[1];
}

export function rankOf(layer: string): number {
  return LAYERS.findIndex((l) => l.includes(layer));
}

export type Graph = Map<string, string[]>;

/** Every .ts file under the given folders of root, with the repository files it imports. */
export function readGraph(root: string, folders: string[]): Graph {
  const graph: Graph = new Map();
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.ts')) {
        const targets = importsOf(fs.readFileSync(path.join(root, rel), 'utf8'))
          .map((spec) => path.posix.normalize(path.posix.join(dir, spec)).replace(/\.js$/, '.ts'))
          .filter((t) => layerOf(t) !== undefined);
        graph.set(rel, targets);
      }
    }
  };
  for (const f of folders) walk(f);
  return graph;
}

/** Imports that run upward, or into a folder no layer names, as "from → to (why)". */
export function upwardImports(graph: Graph): string[] {
  const out: string[] = [];
  for (const [from, targets] of graph) {
    const a = layerOf(from)!;
    for (const to of targets) {
      const b = layerOf(to)!;
      if (rankOf(a) < 0 || rankOf(b) < 0) out.push(`${from} → ${to} (layer ${rankOf(a) < 0 ? a : b} is not in LAYERS)`);
      else if (rankOf(b) > rankOf(a)) out.push(`${from} → ${to} (${a} sits below ${b})`);
    }
  }
  return out;
}

/** Front ends (the API, the CLI, labs) reach drivers only through the controller and the registry the daemon fills. */
export function frontEndDriverImports(graph: Graph): string[] {
  const frontEnd = new Set(['api', 'cli', 'lab']);
  return [...graph].flatMap(([from, targets]) =>
    frontEnd.has(layerOf(from)!) ? targets.filter((t) => layerOf(t) === 'drivers').map((t) => `${from} → ${t}`) : []);
}

/** Import cycles between files (strongly connected components of more than one file, or a self-import). */
export function cycles(graph: Graph): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      on.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(scc.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

/** Files over MAX_LINES lines, as "file: N lines". */
export function longFiles(root: string, graph: Graph): string[] {
  return [...graph.keys()]
    .map((f) => [f, fs.readFileSync(path.join(root, f), 'utf8').split('\n').length - 1] as const)
    .filter(([, n]) => n > MAX_LINES)
    .map(([f, n]) => `${f}: ${n} lines`);
}
