// `npm run bench -- NAME…`: runs the named benchmarks (each a module here with a default-exported
// async function), or all of them with no name. Each prints its figures and the ratio to its peer.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireKernelLock } from '../../test/helpers/kernel-lock.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const available = fs
  .readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'index.ts' && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .sort();

const args = process.argv.slice(2).filter((a) => a !== '--');
if (args.includes('--help') || args.includes('-h')) {
  console.log(`usage: npm run bench -- [NAME…]\nbenchmarks: ${available.join(', ')}`);
  process.exit(0);
}
const names = args.length > 0 ? args : available;
for (const name of names) {
  if (!available.includes(name)) {
    console.error(`bench: unknown benchmark ${JSON.stringify(name)} (have: ${available.join(', ')})`);
    process.exit(2);
  }
}
if (process.getuid?.() !== 0) {
  console.error('bench: must run as root (benchmarks create network namespaces)');
  process.exit(1);
}
const release = await acquireKernelLock({ onWait: (owner) => console.log(`bench: waiting for another privileged run (pid ${owner}) to end`) });
process.on('exit', release);
for (const name of names) {
  console.log(`\n== bench ${name} ==`);
  const mod = (await import(path.join(here, `${name}.ts`))) as { default: () => Promise<void> };
  await mod.default();
}
