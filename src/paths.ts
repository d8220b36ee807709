// Where the project's own files are (bin/, native/), found from this module's place whether it
// runs from its TypeScript source (src/, through tsx) or from the bundle `npm run build` writes
// (dist/): the nearest folder above it holding package.json.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findProjectRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

export const PROJECT_ROOT = findProjectRoot(path.dirname(fileURLToPath(import.meta.url)));

/** A path inside the project, e.g. projectPath('bin', 'cnmkit'). */
export const projectPath = (...parts: string[]): string => path.join(PROJECT_ROOT, ...parts);
