/** The usage line of each command (kept apart from the commands so `ice --help` loads none of them). */
export const RUN_USAGE = 'ice run <component.wasm> --policy <file> [--input <text> | --input-file <path>] [--state <dir>] [--log] [--in-process]';
export const INSPECT_USAGE = 'ice inspect <component.wasm> [--json]';
export const BUILD_USAGE = 'ice build <guest: AssemblyScript .ts or dir with index.ts, or Rust package dir> -o <out.wasm>';
export const AUDIT_USAGE = 'ice audit show <run-id | last> [--json] [--state <dir>]';
