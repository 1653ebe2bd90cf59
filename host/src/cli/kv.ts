/**
 * `ice kv get|set|delete|list|import|export --component <name>`: an agent's kv data, read and written by
 * an operator on a state dir, with or without the agent ever having run. Every write is recorded in
 * the ledger as an operator run (who, what), so `ice state verify` still holds and `ice audit list`
 * shows it; reads are not recorded.
 */
import { parseArgs } from 'node:util';
import { createHost } from '../host.js';
import type { OperatorRun } from '../views/kv-operator.js';
import { UsageError, withUsage } from './args.js';
import { EXIT, type Io } from './io.js';
import { checkStateDir, readUserFile } from './paths.js';
import { KV_USAGE } from './usage.js';

const SUBCOMMANDS = ['get', 'set', 'delete', 'list', 'import', 'export'] as const;
type Sub = (typeof SUBCOMMANDS)[number];
/** Positional arguments each subcommand takes. */
const ARITY: Readonly<Record<Sub, readonly string[]>> = { get: ['key'], set: ['key', 'value'], delete: ['key'], list: [], import: ['file.json (or - for stdin)'], export: [] };

export async function kvCommand(argv: string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (!SUBCOMMANDS.includes(sub as Sub)) {
    throw new UsageError(`ice kv: expected one of ${SUBCOMMANDS.join(', ')}, got ${sub === undefined ? 'nothing' : JSON.stringify(sub)}\nusage: ${KV_USAGE}`);
  }
  const { values, positionals } = withUsage(`kv ${sub}`, KV_USAGE, () =>
    parseArgs({
      args: rest,
      options: { component: { type: 'string' }, state: { type: 'string' }, by: { type: 'string' }, prefix: { type: 'string' }, json: { type: 'boolean', default: false } },
      allowPositionals: true,
      strict: true,
    }),
  );
  const wanted = ARITY[sub as Sub];
  if (positionals.length !== wanted.length) {
    throw new UsageError(`ice kv ${sub}: expected ${wanted.length === 0 ? 'no arguments' : wanted.map((w) => `<${w}>`).join(' ')}, got ${positionals.length === 0 ? 'none' : positionals.map((p) => JSON.stringify(p)).join(' ')}\nusage: ${KV_USAGE}`);
  }
  if (!values.component) throw new UsageError(`ice kv ${sub}: --component <name> is required: the component's name in its policy (its kv namespace)\nusage: ${KV_USAGE}`);
  const entries = sub === 'import' ? readEntries(positionals[0]!) : undefined;
  const host = await createHost({ stateDir: checkStateDir(`kv ${sub}`, values.state, sub !== 'get' && sub !== 'list' && sub !== 'export') });
  try {
    const kv = host.kvOf(values.component, ...(values.by !== undefined ? [values.by] : []));
    switch (sub as Sub) {
      case 'get': {
        const value = kv.get(positionals[0]!);
        if (value === undefined) {
          io.stderr(`ice kv get: component ${values.component} has no key ${JSON.stringify(positionals[0])}\n`);
          return EXIT.checkFailed;
        }
        io.stdout(values.json ? `${JSON.stringify(value)}\n` : `${value}\n`);
        return EXIT.ok;
      }
      case 'list': {
        const keys = kv.list(values.prefix ?? '');
        io.stdout(values.json ? `${JSON.stringify(keys)}\n` : keys.map((k) => `${k}\n`).join(''));
        return EXIT.ok;
      }
      case 'export':
        io.stdout(`${JSON.stringify(Object.fromEntries(kv.export()), null, 2)}\n`);
        return EXIT.ok;
      case 'set':
        return written(io, kv.set(positionals[0]!, positionals[1]!));
      case 'delete':
        return written(io, kv.delete(positionals[0]!));
      case 'import':
        return written(io, kv.import(entries!, positionals[0] === '-' ? 'from stdin' : positionals[0]));
    }
  } finally {
    host.close();
  }
}

function written(io: Io, run: OperatorRun): number {
  const n = run.counts.calls;
  io.stderr(`operator run ${run.runId} · ${n} write${n === 1 ? '' : 's'} recorded · ledger root ${run.ledgerRoot.slice(0, 16)}\n`);
  return EXIT.ok;
}

/** A JSON object of string values (what `ice kv export` prints). */
function readEntries(path: string): [string, string][] {
  const text = path === '-' ? readStdin() : readUserFile('kv import', 'the file', path).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`ice kv import: ${path} is not JSON (${error instanceof Error ? error.message : String(error)}): expected an object of string values, like \`ice kv export\` prints`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new UsageError(`ice kv import: ${path} is not a JSON object: expected { "<key>": "<value>", … }, like \`ice kv export\` prints`);
  }
  const entries = Object.entries(parsed as Record<string, unknown>);
  const bad = entries.find(([, v]) => typeof v !== 'string');
  if (bad) throw new UsageError(`ice kv import: the value of ${JSON.stringify(bad[0])} is not a string; kv values are strings`);
  return entries as [string, string][];
}

function readStdin(): string {
  try {
    return readUserFile('kv import', 'stdin', '/dev/stdin').toString('utf8');
  } catch {
    throw new UsageError('ice kv import: cannot read stdin');
  }
}
