// Entry point of `cnmkit lab …` in the build (dist/lab.cjs, which bin/cnmkit runs for the lab
// commands): the lab group alone, so that a lab command reads, compiles and runs a quarter of the
// whole CLI's bundle (~50 ms of CPU less at each `lab up`, `down`, `check`). Same dispatch, help
// and exit codes as the whole CLI (./dispatch.ts); bin/cnmkit sends nothing else here.
import { main } from './dispatch.js';
import { labGroup } from './commands/lab.js';

void main({ groups: { lab: labGroup }, top: [] });
