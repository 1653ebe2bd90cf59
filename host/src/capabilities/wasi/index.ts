/**
 * WASI 0.2 — the interfaces a component from a standard toolchain (componentize-js, wasm32-wasip2, …)
 * imports, covered key by key by `grants.wasi`. Every call a guest makes — functions and resource
 * methods alike — goes through the kernel's `invoke` (decided against `grants.wasi`, recorded with the
 * same capture rules as ice:agent calls, then performed by preview2-shim, configured explicitly for the
 * run, or by ICE's own cli streams), so it is governed, budgeted and replayed like any other call.
 * Nothing of the host's authority is reachable: the environment, arguments and cwd are the policy's;
 * stdout/stderr are captured; stdin is empty; `exit` ends the run, never the process; the filesystem is
 * the policy's mounts with read-only mounts and path escapes refused; sockets and wasi:http are refused.
 * Every size a guest passes is bounded before the shim allocates (bounds.ts), and a clock pollable never
 * blocks the thread past the run's deadline.
 * A denied function that has an error result answers with the WASI error; one without traps the run with
 * the reason (a clock or random source that lies would be worse).
 */
import { statSync } from 'node:fs';
import type { Capturable, Captured } from '../../core/capture.js';
import { allow, deny, type Decided } from '../../core/verdict.js';
import type { Answer, Budget, CallSite, ForeignCapability, LedgerForm, Mediation, RunContext } from '../define.js';
import { Unrecorded } from '../define.js';
import { boundedPermit, checkBounds, shortened } from './bounds.js';
import { checkFsCall, childPlace, rootOf, type FsPlace, type MountRoot } from './fs-guard.js';
import { covers, KEY_EXAMPLES, wasiImport, type WasiImport, type WasiKey } from './interfaces.js';
import { compileWasi, WasiSettings, WASI_EXAMPLE, type WasiGrant, type WasiMount } from './policy.js';
import { kebab, ResourceTable, type Wrapper } from './resources.js';
import type { WasiCallRouter } from './router.js';
import { CaptureSink, EmptySource, InputSource, pollMixed, ReadyPollable, WRITE_METHODS } from './std.js';
import { fromLedger, NotReplayable, toLedger } from './values.js';
import type { StdStream } from '../run-services.js';

export type { WasiGrant, WasiMount } from './policy.js';
export type { WasiImport, WasiKey } from './interfaces.js';

/** The guest called wasi:cli/exit: the run ends (ok ⇒ ok with empty output; err ⇒ guest error). */
export class WasiExit extends Error {
  override readonly name = 'WasiExit';
  constructor(readonly ok: boolean) {
    super(ok ? 'the guest exited with success' : 'the guest exited with an error status (wasi:cli/exit)');
  }
}

/** A WASI function without an error result was denied: the run traps with this reason. */
export class WasiDenied extends Error {
  override readonly name = 'WasiDenied';
}

type ShimModule = { WASIShim: new (config: unknown) => { getImportObject(): Record<string, Record<string, unknown>> } };
let shimModule: ShimModule | undefined;

/** preview2-shim is loaded only for components that import WASI (it is large, and spawns an I/O thread on use). */
export async function loadWasiShim(): Promise<void> {
  shimModule ??= (await import('@bytecodealliance/preview2-shim/instantiation')) as unknown as ShimModule;
}

export const wasi: ForeignCapability<'wasi', WasiGrant, WasiImport> = {
  kind: 'foreign',
  name: 'wasi',
  summary: 'WASI 0.2 for components from standard toolchains, key by key',
  policy: { schema: WasiSettings, example: WASI_EXAMPLE, deniable: false, compile: compileWasi },
  claim: (name) => wasiImport(name),
  policyKeyOf: (claim) => (claim.key === 'base' ? 'grants.wasi' : `grants.wasi.${claim.key}`),
  uncovered(claims, grant, policySource, origin) {
    const missing = new Map<WasiKey, string[]>();
    for (const claim of claims) {
      if (covers(grant as unknown as { readonly [k: string]: unknown } | undefined, claim.key)) continue;
      missing.set(claim.key, [...(missing.get(claim.key) ?? []), claim.qualified]);
    }
    return [...missing].map(
      ([key, names]) =>
        `${origin} imports ${names.join(', ')}, which policy ${policySource} does not cover: add ${grant ? KEY_EXAMPLES[key] : `a grants.wasi section with ${KEY_EXAMPLES[key]}`}`,
    );
  },
  // Every mount's host directory must exist: a typo must not become an empty (or another) directory.
  checkLoad(grant, { policySource }) {
    for (const mount of Array.isArray(grant.filesystem) ? grant.filesystem : []) {
      if (!isDirectory(mount.host)) {
        return {
          code: 'bad-mount',
          message: `policy ${policySource}: grants.wasi.filesystem mounts ${mount.guest} from ${mount.host}, which is not a directory; create it or fix the host path (relative paths are relative to the policy file)`,
        };
      }
    }
    return undefined;
  },
  prepare: loadWasiShim,
  bind: (grant, claims, run, mediation) => new WasiRun(grant, run, mediation).importObject(claims),
};

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

const STREAM_CLOSED = { tag: 'closed' };

/** A WASI error result (a thrown payload, as jco expects), carried as a value through the kernel. */
class WasiErrorResult {
  constructor(readonly payload: unknown) {}
}

/** What a site needs besides the kernel's: the method's name as jco calls it, and whether args start with `self`. */
interface WasiSite extends CallSite {
  readonly jsName: string;
  readonly member: string;
  readonly qualified: string;
  readonly hasSelf: boolean;
}

/** One run's WASI world: its shim, its resource classes, its descriptors' mounts. */
class WasiRun implements WasiCallRouter {
  private readonly resources = new ResourceTable(this);
  private readonly places = new WeakMap<object, FsPlace>();
  private readonly mounts: readonly WasiMount[];
  private readonly roots: readonly MountRoot[];
  private readonly sites = new Map<string, WasiSite>();
  private readonly budget: Budget;
  /** The stdout handles the guest got (live or replayed): what it writes to them is a command's output. */
  private readonly stdoutHandles = new WeakSet<object>();
  private readonly stdoutDecoder = new TextDecoder('utf-8', { fatal: false });
  private shim: Record<string, Record<string, unknown>> = {};

  constructor(
    private readonly grant: WasiGrant,
    private readonly run: RunContext,
    private readonly mediation: Mediation,
  ) {
    this.mounts = Array.isArray(grant.filesystem) ? grant.filesystem : [];
    this.roots = this.mounts.map((mount) => ({ mount, root: rootOf(mount) }));
    this.budget = { made: 0, max: grant.maxCalls, rule: `${grant.rule}.maxCalls`, name: 'wasi' };
  }

  /** The import object for jco's generated code, for the WASI interfaces the component imports. */
  importObject(imports: readonly WasiImport[]): Record<string, Record<string, unknown>> {
    if (!shimModule) throw new Error('preview2-shim is not loaded (loadWasiShim)');
    const preopens = Object.fromEntries(this.mounts.map((m) => [m.guest, m.host]));
    // Every option explicit: no host environment, arguments, cwd, preopens or network reach the shim.
    this.shim = new shimModule.WASIShim({
      sandbox: { preopens, env: {}, args: [], enableNetwork: false },
      environment: {},
      arguments: [],
      initialCwd: undefined,
    }).getImportObject();
    // The classes first: results of any interface may be resources of another. A class is named in the
    // ledger by the version of its interface the component imports.
    const versions = new Map(imports.map((i) => [i.name, i.qualified]));
    for (const [name, iface] of Object.entries(this.shim)) {
      for (const [jsName, value] of Object.entries(iface ?? {})) {
        if (isClass(value)) this.defineClass(versions.get(name) ?? `${name}@0.2.0`, jsName, value);
      }
    }
    for (const name of ['OutputStream', 'InputStream', 'Pollable']) {
      if (!this.resources.classNamed(name)) this.resources.define('wasi:io/streams@0.2.0', name, [], []);
    }
    this.resources.alias(CaptureSink, 'OutputStream');
    this.resources.alias(EmptySource, 'InputStream');
    this.resources.alias(InputSource, 'InputStream');
    this.resources.alias(ReadyPollable, 'Pollable');

    const table: Record<string, Record<string, unknown>> = {};
    for (const item of imports) table[item.name] = this.interfaceTable(item);
    return table;
  }

  private defineClass(qualified: string, jsName: string, shimClass: { prototype: object }): void {
    const methods = Object.getOwnPropertyNames(shimClass.prototype).filter(
      (m) => m !== 'constructor' && typeof Object.getOwnPropertyDescriptor(shimClass.prototype, m)?.value === 'function',
    );
    const statics = Object.getOwnPropertyNames(shimClass).filter(
      (m) => !['length', 'name', 'prototype'].includes(m) && !m.startsWith('_') && typeof (shimClass as unknown as Record<string, unknown>)[m] === 'function',
    );
    this.resources.define(qualified, jsName, methods, statics, shimClass);
  }

  private interfaceTable(item: WasiImport): Record<string, unknown> {
    const q = item.qualified;
    const shim = this.shim[item.name] ?? {};
    const own = this.ownFunctions(item, shim);
    const table: Record<string, unknown> = {};
    const fn = (jsName: string, perform: (...args: unknown[]) => unknown) => {
      const site = this.site(q, kebab(jsName), jsName, false, (args) => perform(...args));
      table[jsName] = (...args: unknown[]) => this.call(site, args);
    };
    for (const [jsName, value] of Object.entries(shim)) {
      if (isClass(value)) table[jsName] = this.resources.classNamed(jsName);
      else if (typeof value === 'function' && !own[jsName]) fn(jsName, (...args) => (value as (...a: unknown[]) => unknown)(...(this.resources.unwrap(args) as unknown[])));
    }
    for (const [jsName, perform] of Object.entries(own)) fn(jsName, perform);
    return table;
  }

  /** The functions ICE answers itself rather than the shim: the run's environment, exit, stdio, preopens, poll. */
  private ownFunctions(item: WasiImport, shim: Record<string, unknown>): Record<string, (...args: unknown[]) => unknown> {
    switch (item.name) {
      case 'wasi:cli/environment':
        return {
          getEnvironment: () => (this.grant.env ?? []).map(([k, v]) => [k, v]),
          // A command run's own arguments follow the policy's.
          getArguments: () => [...(this.grant.args ?? []), ...(this.run.command?.args ?? [])],
          initialCwd: () => this.grant.cwd,
        };
      case 'wasi:cli/exit':
        // Recorded as an allowed call; the answer (live or replayed) ends the run.
        return { exit: () => undefined };
      case 'wasi:cli/stdout':
      case 'wasi:cli/stderr': {
        const stream: StdStream = item.name === 'wasi:cli/stdout' ? 'stdout' : 'stderr';
        const { component, runId, services } = this.run;
        const sink = new CaptureSink(stream, this.run.limits.maxOutputBytes, (text) => services.wasiOutput?.({ component, runId, stream, text }));
        return { [stream === 'stdout' ? 'getStdout' : 'getStderr']: () => sink };
      }
      case 'wasi:cli/stdin':
        return {
          getStdin: () => (this.grant.stdin === 'input' ? new InputSource(new TextEncoder().encode(this.run.command?.stdin ?? '')) : new EmptySource()),
        };
      case 'wasi:cli/terminal-stdin':
        return { getTerminalStdin: () => undefined };
      case 'wasi:cli/terminal-stdout':
        return { getTerminalStdout: () => undefined };
      case 'wasi:cli/terminal-stderr':
        return { getTerminalStderr: () => undefined };
      case 'wasi:io/poll': {
        const shimPoll = shim.poll as ((list: unknown[]) => Uint32Array) | undefined;
        return { poll: (list) => pollMixed(this.resources.unwrap(list) as unknown[], shimPoll) };
      }
      case 'wasi:clocks/monotonic-clock': {
        // A pollable of the shim blocks this thread until it is ready: never past the run's deadline
        // (after which the guest's next step ends the run with its timeout).
        const clock = shim as { subscribeDuration(d: bigint): unknown; subscribeInstant(t: bigint): unknown; now(): bigint };
        const untilDeadline = () => {
          const left = this.mediation.timeLeft();
          return Number.isFinite(left) ? BigInt(Math.max(0, Math.ceil(left))) * 1_000_000n + 1_000_000n : undefined;
        };
        return {
          subscribeDuration: (duration) => {
            const left = untilDeadline();
            const d = BigInt(duration as bigint);
            return clock.subscribeDuration(left !== undefined && d > left ? left : d);
          },
          subscribeInstant: (instant) => {
            const left = untilDeadline();
            const t = BigInt(instant as bigint);
            const latest = left === undefined ? undefined : clock.now() + left;
            return clock.subscribeInstant(latest !== undefined && t > latest ? latest : t);
          },
        };
      }
      case 'wasi:filesystem/preopens': {
        const get = shim.getDirectories as () => [unknown, string][];
        return { getDirectories: () => (this.grant.filesystem === 'deny' ? [] : get()) };
      }
      default:
        return {};
    }
  }

  // ---- the router: resource methods, statics, constructors

  method(qualified: string, resource: string, method: string, self: unknown, args: unknown[]): unknown {
    const site = this.site(qualified, `[method]${resource}.${kebab(method)}`, method, true, ([wrapper, ...rest]) => {
      const inner = (wrapper as Wrapper).inner as Record<string, (...a: unknown[]) => unknown>;
      const target = inner[method];
      if (typeof target !== 'function') throw new Error(`${resource} has no method ${method}`);
      const args = shortened(this.grant, method, this.resources.unwrap(rest) as unknown[], resource === 'descriptor');
      return boundedPermit(this.grant, method, target.apply(inner, args));
    });
    return this.call(site, [self, ...args]);
  }

  staticCall(qualified: string, resource: string, method: string, shimClass: unknown, args: unknown[]): unknown {
    const site = this.site(qualified, `[static]${resource}.${kebab(method)}`, method, false, (rest) =>
      (shimClass as Record<string, (...a: unknown[]) => unknown>)[method]!(...(this.resources.unwrap(rest) as unknown[])),
    );
    return this.call(site, args);
  }

  construct(qualified: string, resource: string, shimClass: unknown, args: unknown[]): unknown {
    const site = this.site(qualified, `[constructor]${resource}`, 'constructor', false, (rest) => {
      const Shim = shimClass as new (...a: unknown[]) => unknown;
      return new Shim(...(this.resources.unwrap(rest) as unknown[]));
    });
    return this.call(site, args);
  }

  // ---- one call, through the kernel

  /** The call site of `qualified#member`, made on its first call; `effect` performs it on the shim or ICE's streams. */
  private site(qualified: string, member: string, jsName: string, hasSelf: boolean, effect: (args: readonly unknown[]) => unknown): WasiSite {
    const call = `${qualified}#${member}`;
    const known = this.sites.get(call);
    if (known) return known;
    const site = {
      ...this.mediation.site({
        call,
        label: member.replace(/^\[\w+\]/u, ''),
        budget: this.budget,
        effect: 'local',
        form: this.form(jsName, hasSelf),
        decide: (args) => this.decide(qualified, member, jsName, hasSelf ? (args[0] as Wrapper) : undefined, hasSelf ? args.slice(1) : args),
        perform: (args) => this.perform(effect, args),
      }),
      jsName,
      member,
      qualified,
      hasSelf,
    };
    this.sites.set(call, site);
    return site;
  }

  /** The effect, with its result's resources wrapped for this run; a WASI error result is a value, a JS Error a host fault. */
  private perform(effect: (args: readonly unknown[]) => unknown, args: readonly unknown[]): unknown {
    try {
      return this.resources.wrap(effect(args));
    } catch (error) {
      if (error instanceof Error) throw error;
      return new WasiErrorResult(error);
    }
  }

  /** The kernel's answer as jco's WASI glue expects it: a value, a thrown WASI error, or a trap. */
  private call(site: WasiSite, args: unknown[]): unknown {
    const answer: Answer = this.mediation.invoke(site, args);
    if (answer.tag === 'err') {
      // A refusal: a WASI error result where the function has one, else a trap with the reason.
      const payload = /^wasi error (\S+): /u.exec(answer.val.val);
      if (payload) throw JSON.parse(payload[1]!);
      throw new WasiDenied(answer.val.val.replace(/^trap: /u, ''));
    }
    const value = answer.val;
    // A pollable that waited up to the deadline: the run ends with its timeout, not with the guest's next step.
    if (site.jsName === 'block' || site.jsName === 'poll') this.mediation.stopIfPastDeadline();
    if (value instanceof WasiErrorResult) throw value.payload;
    const self = site.hasSelf ? (args[0] as Wrapper) : undefined;
    this.placeResults(site.jsName, self, site.hasSelf ? args.slice(1) : args, value);
    if (this.run.command) this.commandOutput(site.jsName, self, args, value);
    if (site.jsName === 'exit') throw new WasiExit((args[0] as { tag?: string } | undefined)?.tag === 'ok');
    return value;
  }

  /**
   * A command's stdout, taken from what the guest wrote (the call's arguments) rather than from the sink,
   * so a replay, whose writes are answered from the ledger, rebuilds the same output.
   */
  private commandOutput(jsName: string, self: Wrapper | undefined, args: readonly unknown[], value: unknown): void {
    if (jsName === 'getStdout' && value !== null && typeof value === 'object') this.stdoutHandles.add(value);
    else if (self && this.stdoutHandles.has(self) && (jsName === 'write' || jsName === 'blockingWriteAndFlush') && args[1] instanceof Uint8Array) {
      this.run.command!.stdout(this.stdoutDecoder.decode(args[1], { stream: true }));
    }
  }
  /** WASI values in the ledger (values.ts); bytes written to a stream are recorded as text when they are UTF-8. */
  private form(jsName: string, hasSelf: boolean): LedgerForm {
    return {
      args: (args) =>
        args.map((arg, i) => {
          if (i === (hasSelf ? 1 : 0) && WRITE_METHODS.has(jsName) && arg instanceof Uint8Array) {
            try {
              return { $text: new TextDecoder('utf-8', { fatal: true }).decode(arg) };
            } catch {
              // not text: recorded as bytes
            }
          }
          return toLedger(arg);
        }),
      result: (value): Capturable => (value instanceof WasiErrorResult ? { $err: toLedger(value.payload) } : toLedger(value)),
      decode: (recorded: Captured) => {
        let value: unknown;
        try {
          value = fromLedger(recorded, (name) => this.resources.byRecordedName(name));
        } catch (error) {
          if (error instanceof NotReplayable) throw new Unrecorded(error.message);
          throw error;
        }
        return value !== null && typeof value === 'object' && '$err' in value ? new WasiErrorResult((value as { $err: unknown }).$err) : value;
      },
    };
  }

  // ---- decisions

  private decide(qualified: string, member: string, jsName: string, self: Wrapper | undefined, args: readonly unknown[]): Decided {
    const g = this.grant;
    const iface = qualified.slice(0, qualified.lastIndexOf('@'));
    // A refusal with a WASI error payload answers it; one without traps the run. The payload travels in
    // the message, so a replay answers exactly as the run was answered.
    const refuse = (rule: string, reason: string, payload?: unknown) =>
      deny(rule, payload === undefined ? `trap: ${reason}` : `wasi error ${JSON.stringify(payload)}: ${reason}`);
    const inner = self?.inner;
    const over = checkBounds(g, iface, jsName, args, member.startsWith('[method]descriptor.'));
    if (over) return refuse(over.rule, over.reason, over.payload);
    if (inner instanceof CaptureSink) {
      const rule = `grants.wasi.${inner.stream}`;
      if (jsName === 'subscribe') return allow(rule);
      if ((inner.stream === 'stdout' ? g.stdout : g.stderr) !== 'capture') return refuse(rule, `${inner.stream} is deny in the policy`, STREAM_CLOSED);
      if (WRITE_METHODS.has(jsName)) {
        const bytes = jsName.includes('Zeroes') ? Number(args[0]) : (args[0] as Uint8Array).byteLength;
        if (bytes > inner.room()) return refuse('limits.maxOutputBytes', `${inner.stream} would pass limits.maxOutputBytes (${this.run.limits.maxOutputBytes} bytes)`, STREAM_CLOSED);
      }
      return allow(rule);
    }
    if (inner instanceof EmptySource || inner instanceof InputSource) {
      if (jsName === 'subscribe') return allow('grants.wasi.stdin');
      return g.stdin === 'deny' ? refuse('grants.wasi.stdin', 'stdin is deny in the policy', STREAM_CLOSED) : allow('grants.wasi.stdin');
    }
    if (iface.startsWith('wasi:clocks/')) {
      return g.clocks === 'allow' ? allow('grants.wasi.clocks') : refuse('grants.wasi.clocks', 'grants.wasi.clocks is deny; a clock that lied would be worse than none');
    }
    if (iface.startsWith('wasi:random/')) {
      return g.random === 'allow' ? allow('grants.wasi.random') : refuse('grants.wasi.random', 'grants.wasi.random is deny; random bytes cannot be faked safely');
    }
    if (iface.startsWith('wasi:sockets/')) {
      // instance-network has no error result: it traps. Everything else a guest could reach answers
      // access-denied (and without a network or a socket, nothing else is reachable).
      const payload = member === 'instance-network' ? undefined : 'access-denied';
      return refuse('grants.wasi.sockets', 'sockets are not granted (grants.wasi.sockets: deny)', payload);
    }
    if (iface === 'wasi:http/outgoing-handler') {
      return refuse('grants.wasi.http', 'outgoing wasi:http requests are not granted (grants.wasi.http: deny); use ice:agent/http under grants.http', { tag: 'HTTP-request-denied' });
    }
    if (iface.startsWith('wasi:filesystem/')) {
      if (g.filesystem === 'deny' && member !== 'get-directories') return refuse('grants.wasi.filesystem', 'grants.wasi.filesystem is deny', 'access');
      if (self && member.startsWith('[method]descriptor.')) {
        const verdict = checkFsCall(jsName, this.places.get(self), args, (value) => (typeof value === 'object' && value ? this.places.get(value) : undefined), this.roots);
        return verdict.ok ? allow('grants.wasi.filesystem') : refuse('grants.wasi.filesystem', verdict.reason, verdict.code);
      }
      return allow('grants.wasi.filesystem');
    }
    if (iface === 'wasi:cli/environment') return allow(member === 'get-environment' ? 'grants.wasi.env' : member === 'get-arguments' ? 'grants.wasi.args' : 'grants.wasi.cwd');
    return allow('grants.wasi');
  }

  /** Ties descriptors to their mounts: the preopens, and what openAt opens (live and replayed alike). */
  private placeResults(jsName: string, self: Wrapper | undefined, args: readonly unknown[], value: unknown): void {
    if (jsName === 'getDirectories' && Array.isArray(value)) {
      for (const entry of value as [object, string][]) {
        const mount = this.mounts.find((m) => m.guest === entry[1]);
        const known = this.roots.find((r) => r.mount === mount);
        if (mount && known && entry[0]) this.places.set(entry[0], { mount, root: known.root, host: mount.host });
      }
    } else if (jsName === 'openAt' && self && value && typeof value === 'object') {
      const parent = this.places.get(self);
      if (parent) this.places.set(value, childPlace(parent, String(args[1])));
    }
  }
}

function isClass(value: unknown): value is { prototype: object } {
  return typeof value === 'function' && /^[A-Z]/u.test(value.name) && typeof value.prototype === 'object' && value.prototype !== null;
}
