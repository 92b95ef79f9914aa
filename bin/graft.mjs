#!/usr/bin/env node
// graft's command line: TypeScript sources run through tsx's loader.
import { register } from 'tsx/esm/api';
// A closed pipe (graft predict ... | head) ends the command quietly, as other CLIs do.
process.stdout.on('error', (e) => { if (e.code === 'EPIPE') process.exit(0); throw e; });
register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
