/**
 * The WASI 0.2 interfaces ICE admits, and the `grants.wasi` key each one needs. `base` interfaces
 * (wasi:io, exit, the terminal queries) carry no authority of their own: the `grants.wasi` section admits
 * them. Versions 0.2.0 through 0.2.x are admitted (preview2-shim implements them all); anything else is
 * not WASI 0.2 and is refused like any foreign import.
 */
export type WasiKey = 'base' | 'env' | 'stdin' | 'stdout' | 'stderr' | 'clocks' | 'random' | 'filesystem' | 'sockets' | 'http';

const KEYS: Readonly<Record<string, WasiKey>> = {
  'wasi:cli/environment': 'env',
  'wasi:cli/exit': 'base',
  'wasi:cli/stdin': 'stdin',
  'wasi:cli/stdout': 'stdout',
  'wasi:cli/stderr': 'stderr',
  'wasi:cli/terminal-input': 'base',
  'wasi:cli/terminal-output': 'base',
  'wasi:cli/terminal-stdin': 'stdin',
  'wasi:cli/terminal-stdout': 'stdout',
  'wasi:cli/terminal-stderr': 'stderr',
  'wasi:io/error': 'base',
  'wasi:io/poll': 'base',
  'wasi:io/streams': 'base',
  'wasi:clocks/monotonic-clock': 'clocks',
  'wasi:clocks/wall-clock': 'clocks',
  'wasi:random/random': 'random',
  'wasi:random/insecure': 'random',
  'wasi:random/insecure-seed': 'random',
  'wasi:filesystem/types': 'filesystem',
  'wasi:filesystem/preopens': 'filesystem',
  'wasi:sockets/network': 'sockets',
  'wasi:sockets/instance-network': 'sockets',
  'wasi:sockets/ip-name-lookup': 'sockets',
  'wasi:sockets/tcp': 'sockets',
  'wasi:sockets/tcp-create-socket': 'sockets',
  'wasi:sockets/udp': 'sockets',
  'wasi:sockets/udp-create-socket': 'sockets',
  'wasi:http/types': 'http',
  'wasi:http/outgoing-handler': 'http',
};

/** What a `grants.wasi.<key>` says, for messages: the fix for an uncovered import. */
export const KEY_EXAMPLES: Readonly<Record<WasiKey, string>> = {
  base: 'grants.wasi: {}',
  env: 'grants.wasi.env: {} (the variables the guest sees; {} for none)',
  stdin: 'grants.wasi.stdin: empty (or deny)',
  stdout: 'grants.wasi.stdout: capture (or deny)',
  stderr: 'grants.wasi.stderr: capture (or deny)',
  clocks: 'grants.wasi.clocks: allow (or deny: calls then trap)',
  random: 'grants.wasi.random: allow (or deny: calls then trap)',
  filesystem: 'grants.wasi.filesystem: [{ guest: /data, host: ./data, mode: read-only }] (or deny)',
  sockets: 'grants.wasi.sockets: deny',
  http: 'grants.wasi.http: deny',
};

export interface WasiImport {
  /** Unversioned, as jco's generated code looks it up: `wasi:cli/environment`. */
  readonly name: string;
  /** As imported: `wasi:cli/environment@0.2.12`. */
  readonly qualified: string;
  readonly key: WasiKey;
}

const WASI_02 = /^(wasi:[a-z][a-z0-9-]*\/[a-z][a-z0-9-]*)@0\.2\.\d+$/u;

/** The WASI 0.2 interface an import name denotes, or undefined when it is not one ICE admits. */
export function wasiImport(qualified: string): WasiImport | undefined {
  const match = WASI_02.exec(qualified);
  if (!match) return undefined;
  const name = match[1]!;
  const key = KEYS[name];
  return key === undefined ? undefined : { name, qualified, key };
}

/** Whether a grants.wasi section covers `key`. */
export function covers(grant: { readonly [k: string]: unknown } | undefined, key: WasiKey): boolean {
  if (!grant) return false;
  return key === 'base' || grant[key] !== undefined;
}
