/** `ice audit show <run-id | last> [--json] [--state <dir>]` */
import { formatStoredRunTable } from '../ledger/format.js';
import { LedgerStore } from '../ledger/index.js';
import { openStateDb } from '../state/db.js';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { onePositional, withUsage, UsageError } from './args.js';
import { parseArgs } from 'node:util';
import { EXIT, type Io } from './io.js';
import { AUDIT_USAGE } from './usage.js';

export async function auditCommand(argv: string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'show') {
    throw new UsageError(`ice audit: ${sub ? `unknown subcommand "${sub}"` : 'missing subcommand'}\nusage: ${AUDIT_USAGE}`);
  }
  const { values, positionals } = withUsage('audit show', AUDIT_USAGE, () =>
    parseArgs({ args: rest, options: { json: { type: 'boolean', default: false }, state: { type: 'string' } }, allowPositionals: true, strict: true }),
  );
  const wanted = onePositional('audit show', positionals, 'run id (or `last`)', AUDIT_USAGE);
  const stateDir = resolve(values.state ?? '.ice');
  if (!existsSync(join(stateDir, 'ice.db'))) {
    throw new UsageError(`ice audit show: no ICE state in ${stateDir} (no ice.db): run a component first, or pass --state <dir>`);
  }
  const state = openStateDb(stateDir);
  try {
    const ledger = new LedgerStore(state);
    const runId = ledger.resolveRunId(wanted);
    if (!runId) throw new UsageError(`ice audit show: the ledger in ${stateDir} has no runs yet`);
    const records = ledger.readRun(runId);
    if (records.length === 0) throw new UsageError(`ice audit show: no run ${runId} in the ledger in ${stateDir} (try \`ice audit show last\`)`);
    if (values.json) io.stdout(records.map((r) => `${r.body}\n`).join(''));
    else io.stdout(`${formatStoredRunTable(records)}\n`);
    return EXIT.ok;
  } finally {
    state.close();
  }
}
