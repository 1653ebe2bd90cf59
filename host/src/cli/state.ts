/**
 * `ice state rebuild|verify [--component <name>] [--state <dir>]`: the kv table is a view of the
 * ledger (the fold of every granted kv write, see views/kv-fold.ts), and so is the registry of served
 * agents (the fold of their lifecycle records, views/lifecycle.ts); rebuild recomputes them, verify
 * compares them. With --component, only that component's kv.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { openStateDb, STATE_DB_FILE, type StateDb } from '../storage/db.js';
import { LedgerKeyError } from '../storage/ledger-key.js';
import { ledgerComponents, LedgerShapeError } from '../views/events.js';
import { diffRegistry, rebuildRegistry } from '../views/lifecycle.js';
import { describeDifference, diffKv, KvFoldError, rebuildKv, type KvDiff, type RebuildResult } from '../views/kv-fold.js';
import { UsageError, withUsage } from './args.js';
import { EXIT, type Io } from './io.js';
import { STATE_USAGE } from './usage.js';
import { checkStateDir } from './paths.js';


export async function stateCommand(argv: string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'rebuild' && sub !== 'verify') {
    throw new UsageError(`ice state: ${sub ? `unknown subcommand "${sub}"` : 'missing subcommand'}\nusage: ${STATE_USAGE}`);
  }
  const { values } = withUsage(`state ${sub}`, STATE_USAGE, () =>
    parseArgs({ args: rest, options: { component: { type: 'string' }, state: { type: 'string' } }, allowPositionals: false, strict: true }),
  );
  const state = openExistingState(`state ${sub}`, values.state);
  try {
    if (values.component !== undefined) checkComponent(`state ${sub}`, state, values.component);
    return sub === 'rebuild' ? rebuild(state, values.component, io) : verify(state, values.component, io);
  } finally {
    state.close();
  }
}

/** The state database in `dir`; a missing one is a usage error (opening would create an empty one). */
export function openExistingState(command: string, dir: string | undefined): StateDb {
  const stateDir = checkStateDir(command, dir, false);
  if (!existsSync(join(stateDir, STATE_DB_FILE))) {
    throw new UsageError(`ice ${command}: no ICE state in ${stateDir} (no ${STATE_DB_FILE}): run a component first, or pass --state <dir>`);
  }
  try {
    return openStateDb(stateDir);
  } catch (error) {
    if (error instanceof LedgerKeyError) throw new UsageError(`ice ${command}: ${error.message}`);
    throw error;
  }
}

/** A --component that names nothing is most likely a typo: say which names exist rather than do nothing. */
function checkComponent(command: string, state: StateDb, component: string): void {
  const viewNames = state.db.prepare<[], { namespace: string }>('SELECT DISTINCT namespace FROM kv').all().map((row) => row.namespace);
  const known = [...new Set([...ledgerComponents(state), ...viewNames])].sort();
  if (known.includes(component)) return;
  const list = known.length === 0 ? 'there are none yet' : `components: ${known.join(', ')}`;
  throw new UsageError(`ice ${command}: no component "${component}" in the ledger or the kv view in ${state.dir} (${list}); pass one of those to --component, or leave it out for all`);
}

function rebuild(state: StateDb, component: string | undefined, io: Io): number {
  let result: RebuildResult;
  try {
    result = rebuildKv(state, component);
  } catch (error) {
    // A refusal, not a crash: nothing was changed and the message says why and what to do.
    if (error instanceof KvFoldError || error instanceof LedgerShapeError) throw new UsageError(`ice state rebuild: ${error.message}`);
    throw error;
  }
  io.stdout(`${rebuildSummary(result)}\n`);
  if (component === undefined) {
    const agents = rebuildRegistry(state);
    if (agents > 0) io.stdout(`rebuilt the registry of ${plural(agents, 'served agent')} from its lifecycle records\n`);
  }
  return EXIT.ok;
}

function rebuildSummary(result: RebuildResult): string {
  const head = `rebuilt kv of ${plural(result.components.length, 'component')} from ${plural(result.events, 'event')}`;
  if (result.components.length === 0) return head;
  return `${head}: ${result.components.map((c) => `${c.name} (${plural(c.keys, 'key')})`).join(', ')}`;
}

function verify(state: StateDb, component: string | undefined, io: Io): number {
  let diff: KvDiff;
  try {
    diff = diffKv(state, component);
  } catch (error) {
    if (!(error instanceof LedgerShapeError)) throw error;
    io.stderr(`ice state verify: cannot fold the ledger: ${error.message}\n`);
    return EXIT.checkFailed;
  }
  const registry = component === undefined ? diffRegistry(state) : undefined;
  const registryLines =
    registry === undefined || (registry.agents === 0 && registry.differences.length === 0)
      ? []
      : registry.differences.length === 0
        ? [`ok: the registry of served agents equals the fold of ${plural(registry.transitions, 'lifecycle record')} (${plural(registry.agents, 'agent')})`]
        : [
            ...registry.differences,
            `the registry of served agents differs from the fold of ${plural(registry.transitions, 'lifecycle record')}: check the ledger with \`ice audit verify --all\`, then \`ice state rebuild\` restores it`,
          ];
  const registryOk = registry === undefined || registry.differences.length === 0;
  if (diff.differences.length === 0) {
    io.stdout(`${verifiedSummary(diff)}\n${registryLines.map((l) => `${l}\n`).join('')}${unknownNote(diff)}`);
    return registryOk ? EXIT.ok : EXIT.checkFailed;
  }
  const lines = diff.differences.map(describeDifference);
  lines.push(
    `the kv view differs from the fold of ${plural(diff.events, 'event')} in ${plural(diff.differences.length, 'key')}: ` +
      'check the ledger with `ice audit verify --all`, then `ice state rebuild` restores the view from it',
  );
  io.stdout(`${[...lines, ...registryLines].join('\n')}\n${unknownNote(diff)}`);
  return EXIT.checkFailed;
}

/**
 * kv writes the ledger cannot say happened or not: their intent has no result. A write commits with its
 * result, so none of them is in the view; said explicitly, never silently left out.
 */
function unknownNote(diff: KvDiff): string {
  if (diff.unknown.length === 0) return '';
  const listed = diff.unknown.slice(0, 10).map((u) => `run ${u.run} seq ${u.seq}`).join(', ');
  const more = diff.unknown.length > 10 ? `, and ${diff.unknown.length - 10} more` : '';
  return (
    `${plural(diff.unknown.length, 'kv write')} with outcome unknown (${listed}${more}): each stopped before its result was recorded, ` +
    'and a write commits only with its result, so none is in the view or the fold\n'
  );
}

function verifiedSummary(diff: KvDiff): string {
  const byDigest = diff.digestChecked === 0 ? '' : `; ${diff.digestChecked} compared by sha256, as recorded under digest capture`;
  return `ok: kv view equals the fold of ${plural(diff.events, 'event')} (${plural(diff.components, 'component')}, ${plural(diff.keys, 'key')}${byDigest})`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
