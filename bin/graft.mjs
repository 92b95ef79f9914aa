#!/usr/bin/env node
// graft's command line. In a source checkout it runs the TypeScript sources through tsx (a dev dependency),
// so edits need no build; an installed package runs the compiled dist/.
import { existsSync } from 'node:fs';
// A closed pipe (graft predict ... | head) ends the command quietly, as other CLIs do.
process.stdout.on('error', (e) => { if (e.code === 'EPIPE') process.exit(0); throw e; });
const src = new URL('../src/cli/main.ts', import.meta.url);
let main;
if (existsSync(src)) {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import(src.href));
} else {
  ({ main } = await import('../dist/cli/main.js'));
}
process.exitCode = await main(process.argv.slice(2));
