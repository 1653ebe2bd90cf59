/** The usage line of each command (kept apart from the commands so `ice --help` loads none of them). */
const HOST_OPTIONS = '[--state <dir>] [--log] [--in-process] [--secrets <file>] [--approve all|none] [--model-base-url <url> [--model-key-secret <NAME>]] [--max-component-bytes <n>]';
export const RUN_USAGE = `ice run <component.wasm> --policy <file> [--input <text> | --input-file <path>] ${HOST_OPTIONS} [-- <args of a WASI command>…]`;
export const CALL_USAGE = `ice call <component.wasm> <function> --policy <file> (--args '<json object>' | --args-file <path>) ${HOST_OPTIONS}`;
export const MCP_USAGE = 'ice mcp --config <agents.yaml> [--state <dir>] [--in-process] [--secrets <file>] [--max-component-bytes <n>]';
export const SERVE_USAGE = 'ice serve --config <ice.yaml> [--state <dir>] [--listen <host:port>] [--token-file <file>] [--drain-ms <ms>] [--workers <n>] [--allow-origin <origin>]… [--secrets <file>] [--max-component-bytes <n>] [--db <postgres://…> [--lease-ms <ms>]]';
export const INSPECT_USAGE = 'ice inspect <component.wasm> [--json] [--max-component-bytes <n>]';
export const BUILD_USAGE = 'ice build <guest: AssemblyScript .ts or dir with index.ts, or Rust package dir> -o <out.wasm>';
export const AUDIT_USAGE = [
  'ice audit list [--limit <n>] [--state <dir>]',
  'ice audit show <run-id | last> [--json] [--denied] [--interface <name>] [--state <dir>]',
  'ice audit verify [<run-id> [--root <hex>] | --all | --file <export.jsonl>] [--state <dir>]',
  'ice audit verify --db <postgres://…>   (a cluster\'s shared ledger; ICE_LEDGER_KEY is its key)',
  'ice audit export <run-id | last> --format jsonl [--state <dir>]',
  'ice audit trace <run-id | last> [--limit <n>] [--json] [--state <dir>]',
  'ice audit tail [--after <row id>] [--json] [--state <dir> | --server <url> --token-file <file>]',
].join('\n  ');
export const REPLAY_USAGE = 'ice replay <run-id | last> [--component <path> | --against <other.wasm>] [--timeout <ms>] [--state <dir>] [--max-component-bytes <n>]';
export const STATE_USAGE = ['ice state rebuild [--component <name>] [--state <dir>]', 'ice state verify [--component <name>] [--state <dir>]'].join('\n  ');
export const EVENTS_USAGE = 'ice events list [--kind <pattern>] [--component <name>] [--json] [--follow] [--state <dir> | --server <url> --token-file <file>]';
/** How `ice agents` finds the server: the one running on a state dir, or one named by its URL. */
const SERVER = '[--state <dir> | --server <url> --token-file <file>]';
export const AGENTS_USAGE = [
  `ice agents list [--json] ${SERVER}`,
  `ice agents status <name> [--json] ${SERVER}`,
  `ice agents suspend <name> [--reason <text>] [--by <operator>] [--json] ${SERVER}`,
  `ice agents resume <name> [--reason <text>] [--by <operator>] [--json] ${SERVER}`,
  `ice agents upgrade <name> --component <new.wasm> [--against <n>] [--force] [--by <operator>] [--json] ${SERVER}`,
  `ice agents invoke <name> [--input <text> | --function <name> [--args '<json>'] | [--input <stdin>] -- <command args>…] [--by <operator>] [--json] ${SERVER}`,
].join('\n  ');
export const KV_USAGE = [
  'ice kv get <key> --component <name> [--json] [--state <dir>]',
  'ice kv set <key> <value> --component <name> [--by <operator>] [--state <dir>]',
  'ice kv delete <key> --component <name> [--by <operator>] [--state <dir>]',
  'ice kv list [--prefix <p>] [--json] --component <name> [--state <dir>]',
  'ice kv import <file.json | -> --component <name> [--by <operator>] [--state <dir>]',
  'ice kv export --component <name> [--state <dir>]',
].join('\n  ');
