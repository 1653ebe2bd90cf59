/**
 * `grants.wasi`: what a component built with a standard toolchain (componentize-js, wasm32-wasip2, …)
 * sees of WASI 0.2. Every key is optional and none has a default: a component importing a WASI interface
 * whose key is absent is refused at load, naming the key. `deny` admits the import and refuses every call.
 *
 *   wasi:
 *     env: { GREETING: "hi" }        # exactly what the guest sees; nothing from the host
 *     args: ["agent"]
 *     cwd: "/"                        # what initial-cwd reports
 *     stdout: capture                 # capture | deny
 *     stderr: capture
 *     stdin: empty                    # empty | input (a command run's --input) | deny
 *     clocks: allow                   # allow | deny
 *     random: allow                   # allow | deny
 *     filesystem:
 *       - { guest: /data, host: ./data, mode: read-only }   # host is relative to the policy file
 *     sockets: deny
 *     http: deny
 *     maxCalls: 100000                # WASI calls per run (default); the next one traps the run
 *     maxReadBytes: 1048576           # bytes one read (descriptor, stream, splice) answers (default 1 MiB): a short read
 *     maxWriteBytes: 1048576          # bytes one write takes (default 1 MiB): a descriptor write is short, a stream write over it traps
 *     maxRandomBytes: 1048576         # bytes one get-random-bytes call may ask (default 1 MiB); more traps the run
 *     maxPathBytes: 4096              # UTF-8 bytes of a path argument (default); longer answers name-too-long
 *
 * Mounts may not nest in the guest's namespace (/data and /data/ro): what a path means would depend on
 * the descriptor used. Host directories may overlap; a read-only one stays read-only through every mount.
 */
import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { deepFreeze, describeValue, maxCalls, messages, MiB, size, strictObject, type CompileContext } from '../../policy/index.js';
import type { Grant } from '../define.js';

export const WASI_EXAMPLE = 'wasi: { env: {}, stdout: capture, stderr: capture, stdin: empty, clocks: allow, random: allow }';

const text = (what: string) => z.string({ error: (issue) => `expected ${what} as a string, got ${describeValue(issue.input)}` });
const CONTROL = /[\u0000-\u001f\u007f]/u;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/u;

const Env = z
  .record(
    text('a variable name'),
    text('a value').refine((v) => !CONTROL.test(v) && v.length <= 4096, { error: 'values must be printable and at most 4096 characters' }),
    { error: (issue) => `expected a mapping of variable names to values, like env: { GREETING: "hi" }, got ${describeValue(issue.input)}` },
  )
  .superRefine((env, ctx) => {
    const names = Object.keys(env);
    if (names.length > 256) ctx.addIssue({ code: 'custom', message: 'at most 256 variables' });
    for (const name of names) {
      if (!ENV_NAME.test(name)) ctx.addIssue({ code: 'custom', path: [name], message: `${describeValue(name)} is not a variable name (letters, digits, _)` });
    }
  });

const Args = z
  .array(text('an argument').refine((v) => !CONTROL.test(v) && v.length <= 4096, { error: 'arguments must be printable and at most 4096 characters' }), {
    error: (issue) => `expected a list of arguments like ["agent"], got ${describeValue(issue.input)}`,
  })
  .max(256, { error: 'at most 256 arguments' });

const GuestPath = text('a guest path like "/data"').superRefine((path, ctx) => {
  if (!path.startsWith('/')) ctx.addIssue({ code: 'custom', message: `the guest path ${describeValue(path)} must be absolute, like "/data"` });
  else if (path.split('/').some((s) => s === '..' || s === '.')) ctx.addIssue({ code: 'custom', message: `the guest path ${describeValue(path)} must not contain "." or ".." segments` });
  else if (CONTROL.test(path) || path.length > 1024) ctx.addIssue({ code: 'custom', message: 'the guest path must be printable and at most 1024 characters' });
});

const Mount = strictObject(
  {
    guest: GuestPath,
    host: text('a host directory').refine((p) => p.length > 0 && !CONTROL.test(p), { error: 'the host directory must be a non-empty printable path' }),
    mode: z.enum(['read-only', 'read-write'], { error: (issue) => `expected read-only or read-write, got ${describeValue(issue.input)}` }),
  },
  (got) => messages.grantNotSettings('{ guest: /data, host: ./data, mode: read-only }', got),
);

/** Defaults and ceilings of the per-call size knobs: every length a guest passes is bounded before the host allocates. */
export const WASI_SIZES = Object.freeze({
  maxReadBytes: { default: MiB, max: 256 * MiB },
  maxWriteBytes: { default: MiB, max: 256 * MiB },
  maxRandomBytes: { default: MiB, max: 64 * MiB },
  maxPathBytes: { default: 4096, max: 65536 },
} as const);

const sizeKnob = (name: keyof typeof WASI_SIZES) => size(WASI_SIZES[name].max, WASI_SIZES[name].default);

/** `/data` and `/data/ro`: one is inside the other. */
function nested(a: string, b: string): boolean {
  const dir = (p: string) => (p.endsWith('/') ? p : `${p}/`);
  return dir(b).startsWith(dir(a)) || dir(a).startsWith(dir(b));
}

const choice = <T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: (issue) => `expected ${values.join(' or ')}, got ${describeValue(issue.input)}` }).optional();

export const WasiSettings = strictObject(
  {
    env: Env.optional(),
    args: Args.optional(),
    cwd: GuestPath.optional(),
    stdout: choice(['capture', 'deny'] as const),
    stderr: choice(['capture', 'deny'] as const),
    stdin: choice(['empty', 'input', 'deny'] as const),
    clocks: choice(['allow', 'deny'] as const),
    random: choice(['allow', 'deny'] as const),
    filesystem: z
      .union([z.literal('deny'), z.array(Mount).max(32, { error: 'at most 32 mounts' })], {
        error: (issue) => `expected a list of mounts like [{ guest: /data, host: ./data, mode: read-only }], or deny; got ${describeValue(issue.input)}`,
      })
      .superRefine((mounts, ctx) => {
        if (mounts === 'deny') return;
        const seen = new Set<string>();
        mounts.forEach((m, i) => {
          if (seen.has(m.guest)) ctx.addIssue({ code: 'custom', path: [i, 'guest'], message: `${m.guest} is mounted twice` });
          else {
            const outer = [...seen].find((g) => nested(g, m.guest));
            if (outer) ctx.addIssue({ code: 'custom', path: [i, 'guest'], message: `${m.guest} and ${outer} are nested; mount them side by side (like /data and /data-ro)` });
          }
          seen.add(m.guest);
        });
      })
      .optional(),
    sockets: z.literal('deny', { error: (issue) => `only deny is supported for sockets (ICE does not grant raw network access); got ${describeValue(issue.input)}` }).optional(),
    http: z.literal('deny', { error: (issue) => `only deny is supported for wasi:http for now; use ice:agent/http (grants.http) for governed HTTP; got ${describeValue(issue.input)}` }).optional(),
    // Every WASI call is a ledger record: a guest looping on them is stopped here (the run traps).
    maxCalls: maxCalls(),
    maxReadBytes: sizeKnob('maxReadBytes'),
    maxWriteBytes: sizeKnob('maxWriteBytes'),
    maxRandomBytes: sizeKnob('maxRandomBytes'),
    maxPathBytes: sizeKnob('maxPathBytes'),
  },
  (got) => messages.grantNotSettings(WASI_EXAMPLE, got),
);

export interface WasiMount {
  /** Where the guest sees it (absolute). */
  readonly guest: string;
  /** The host directory, absolute (resolved against the policy file's directory). */
  readonly host: string;
  readonly mode: 'read-only' | 'read-write';
}

/**
 * `grants.wasi`: each key undefined when the policy does not mention it (a component importing the
 * matching WASI interface is then refused at load), or its setting.
 */
export interface WasiGrant extends Grant {
  readonly env?: readonly (readonly [string, string])[];
  readonly args?: readonly string[];
  readonly cwd?: string;
  readonly stdout?: 'capture' | 'deny';
  readonly stderr?: 'capture' | 'deny';
  readonly stdin?: 'empty' | 'input' | 'deny';
  readonly clocks?: 'allow' | 'deny';
  readonly random?: 'allow' | 'deny';
  readonly filesystem?: readonly WasiMount[] | 'deny';
  readonly sockets?: 'deny';
  readonly http?: 'deny';
  readonly maxCalls: number;
  readonly maxReadBytes: number;
  readonly maxWriteBytes: number;
  readonly maxRandomBytes: number;
  readonly maxPathBytes: number;
}

export function compileWasi(wasi: z.output<typeof WasiSettings>, { rule, base }: CompileContext): WasiGrant {
  const { env, filesystem, ...rest } = wasi;
  return deepFreeze({
    mode: 'grant',
    rule,
    ...rest,
    ...(env === undefined ? {} : { env: Object.entries(env) }),
    ...(filesystem === undefined
      ? {}
      : { filesystem: filesystem === 'deny' ? 'deny' : filesystem.map((m) => ({ guest: m.guest, host: resolvePath(base, m.host), mode: m.mode })) }),
  } as WasiGrant);
}
