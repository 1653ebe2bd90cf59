/**
 * The WASI mediator: every WASI 0.2 call a guest makes — functions and resource methods alike — is
 * decided against `grants.wasi`, recorded in the run's ledger with the same capture rules as ice:agent
 * calls, and only then performed (by preview2-shim, configured explicitly for this run, or by ICE's own
 * cli streams). Nothing of the host's authority is reachable: the environment, arguments and cwd are the
 * policy's; stdout/stderr are captured; stdin is empty; `exit` ends the run, never the process; the
 * filesystem is the policy's mounts with read-only mounts and path escapes refused; sockets and wasi:http
 * are refused. A denied function that has an error result answers with the WASI error; one without traps
 * the run with the reason (a clock or random source that lies would be worse).
 *
 * The same class serves a replay: decisions and answers then come from the recorded run.
 */
import { capture, isoNow, type CallInput, type CallRecord, type Captured } from '../ledger/index.js';
import type { RunScope } from '../capabilities/operation.js';
import type { WasiGrant, WasiMount } from '../policy/index.js';
import { checkFsCall, childPlace, rootOf, type FsPlace } from './fs-guard.js';
import type { WasiImport } from './interfaces.js';
import { kebab, ResourceTable, type Wrapper } from './resources.js';
import type { WasiCallRouter } from './router.js';
import { CaptureSink, EmptySource, pollMixed, ReadyPollable, WRITE_METHODS, type StdStream } from './std.js';
import { fromLedger, toLedger } from './values.js';

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

/** Where calls are recorded (the run's writer). */
export interface WasiRecorder {
  appendCall(call: CallInput): unknown;
}

/** Replay: the next recorded call, checked against the call being made (throws on divergence). */
export type RecordedCalls = (call: string, args: Captured[]) => CallRecord;

export interface WasiOutputEntry {
  readonly component: string;
  readonly runId: string;
  readonly stream: StdStream;
  readonly text: string;
}
export type WasiOutputSink = (entry: WasiOutputEntry) => void;

type ShimModule = { WASIShim: new (config: unknown) => { getImportObject(): Record<string, Record<string, unknown>> } };
let shimModule: ShimModule | undefined;

/** preview2-shim is loaded only for components that import WASI (it is large, and spawns an I/O thread on use). */
export async function loadWasiShim(): Promise<void> {
  shimModule ??= (await import('@bytecodealliance/preview2-shim/instantiation')) as unknown as ShimModule;
}


type Verdict = { readonly allow: true; readonly rule: string } | { readonly allow: false; readonly rule: string; readonly reason: string; readonly payload?: unknown };

const STREAM_CLOSED = { tag: 'closed' };

export class WasiMediator implements WasiCallRouter {
  hostFault: Error | undefined;
  private readonly resources = new ResourceTable(this);
  private readonly places = new WeakMap<object, FsPlace>();
  private readonly mounts: readonly WasiMount[];
  private shim: Record<string, Record<string, unknown>> = {};
  private made = 0;

  constructor(
    private readonly grant: WasiGrant,
    private readonly scope: RunScope,
    private readonly recorder: WasiRecorder,
    private readonly limits: { readonly maxOutputBytes: number },
    private readonly output: WasiOutputSink | undefined,
    /** Absent: live. Present: a replay answering from these records. */
    private readonly recorded?: RecordedCalls,
  ) {
    this.mounts = Array.isArray(grant.filesystem) ? grant.filesystem : [];
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
    const table: Record<string, unknown> = {};
    for (const [jsName, value] of Object.entries(shim)) {
      if (isClass(value)) table[jsName] = this.resources.classNamed(jsName);
      else if (typeof value === 'function') table[jsName] = (...args: unknown[]) => this.call(q, kebab(jsName), undefined, jsName, args, () => (value as (...a: unknown[]) => unknown)(...this.resources.unwrap(args) as unknown[]));
    }
    const fn = (jsName: string, perform: (...args: unknown[]) => unknown) => {
      table[jsName] = (...args: unknown[]) => this.call(q, kebab(jsName), undefined, jsName, args, () => perform(...args));
    };
    switch (item.name) {
      case 'wasi:cli/environment':
        fn('getEnvironment', () => (this.grant.env ?? []).map(([k, v]) => [k, v]));
        fn('getArguments', () => [...(this.grant.args ?? [])]);
        fn('initialCwd', () => this.grant.cwd);
        break;
      case 'wasi:cli/exit':
        fn('exit', (status) => {
          throw new WasiExit((status as { tag?: string } | undefined)?.tag === 'ok');
        });
        break;
      case 'wasi:cli/stdout':
      case 'wasi:cli/stderr': {
        const stream: StdStream = item.name === 'wasi:cli/stdout' ? 'stdout' : 'stderr';
        const sink = new CaptureSink(stream, this.limits.maxOutputBytes, (text) => this.output?.({ component: this.scope.component, runId: this.scope.runId, stream, text }));
        fn(stream === 'stdout' ? 'getStdout' : 'getStderr', () => this.resources.wrap(sink));
        break;
      }
      case 'wasi:cli/stdin':
        fn('getStdin', () => this.resources.wrap(new EmptySource()));
        break;
      case 'wasi:cli/terminal-stdin':
        fn('getTerminalStdin', () => undefined);
        break;
      case 'wasi:cli/terminal-stdout':
        fn('getTerminalStdout', () => undefined);
        break;
      case 'wasi:cli/terminal-stderr':
        fn('getTerminalStderr', () => undefined);
        break;
      case 'wasi:io/poll': {
        const shimPoll = shim.poll as ((list: unknown[]) => Uint32Array) | undefined;
        fn('poll', (list) => pollMixed(this.resources.unwrap(list) as unknown[], shimPoll));
        break;
      }
      case 'wasi:filesystem/preopens': {
        const get = shim.getDirectories as () => [unknown, string][];
        fn('getDirectories', () => (this.grant.filesystem === 'deny' ? [] : get()));
        break;
      }
    }
    return table;
  }

  // ---- the router: resource methods, statics, constructors

  method(qualified: string, resource: string, method: string, self: unknown, args: unknown[]): unknown {
    const wrapper = self as Wrapper;
    return this.call(qualified, `[method]${resource}.${kebab(method)}`, wrapper, method, args, () => {
      const inner = wrapper.inner as Record<string, (...a: unknown[]) => unknown>;
      const target = inner[method];
      if (typeof target !== 'function') throw new Error(`${resource} has no method ${method}`);
      return target.apply(inner, this.resources.unwrap(args) as unknown[]);
    });
  }

  staticCall(qualified: string, resource: string, method: string, shimClass: unknown, args: unknown[]): unknown {
    return this.call(qualified, `[static]${resource}.${kebab(method)}`, undefined, method, args, () =>
      (shimClass as Record<string, (...a: unknown[]) => unknown>)[method]!(...(this.resources.unwrap(args) as unknown[])),
    );
  }

  construct(qualified: string, resource: string, shimClass: unknown, args: unknown[]): unknown {
    const made = this.call(qualified, `[constructor]${resource}`, undefined, 'constructor', args, () => {
      const Shim = shimClass as new (...a: unknown[]) => unknown;
      return new Shim(...(this.resources.unwrap(args) as unknown[]));
    });
    return made;
  }

  // ---- one mediated call

  private call(qualified: string, member: string, self: Wrapper | undefined, jsName: string, args: unknown[], perform: () => unknown): unknown {
    const call = `${qualified}#${member}`;
    const started = performance.now();
    const ledgerArgs = [...(self ? [self] : []), ...args].map((arg, i) => this.captureArg(jsName, i - (self ? 1 : 0), arg));
    if (this.recorded) return this.replayed(call, ledgerArgs, jsName, self, args);
    const verdict: Verdict =
      ++this.made > this.grant.maxCalls
        ? { allow: false, rule: 'grants.wasi.maxCalls', reason: `call ${this.made} to WASI in this run is over grants.wasi.maxCalls (${this.grant.maxCalls})` }
        : this.decide(qualified, member, jsName, self, args);
    if (!verdict.allow) {
      const message = verdict.payload === undefined ? `trap: ${verdict.reason}` : `wasi error ${JSON.stringify(verdict.payload)}: ${verdict.reason}`;
      this.record(call, ledgerArgs, 'deny', verdict.rule, { err: { kind: 'denied', message } }, started);
      if (verdict.payload === undefined) throw new WasiDenied(`${member.replace(/^\[\w+\]/u, '')} (${qualified}) denied: ${verdict.reason}`);
      throw verdict.payload;
    }
    let raw: unknown;
    try {
      raw = perform();
    } catch (error) {
      if (error instanceof WasiExit) {
        this.record(call, ledgerArgs, 'allow', verdict.rule, { ok: null }, started);
        throw error;
      }
      if (error instanceof Error) {
        // The shim failed (not a WASI error result): the host's fault, never handed to the guest as an answer.
        const fault = new Error(`host fault in ${call}: ${error.message}`);
        this.hostFault = fault;
        this.record(call, ledgerArgs, 'allow', verdict.rule, { err: { kind: 'failed', message: fault.message } }, started);
        throw fault;
      }
      // A WASI error result (a thrown payload, as jco expects): recorded as the call's answer.
      this.record(call, ledgerArgs, 'allow', verdict.rule, { ok: this.captureValue({ $err: toLedger(error) }) }, started);
      throw error;
    }
    const value = this.resources.wrap(raw);
    this.placeResults(jsName, self, args, value);
    this.record(call, ledgerArgs, 'allow', verdict.rule, { ok: value === undefined ? null : this.captureValue(toLedger(value)) }, started);
    return value;
  }

  private replayed(call: string, ledgerArgs: Captured[], jsName: string, self: Wrapper | undefined, args: unknown[]): unknown {
    const record = this.recorded!(call, ledgerArgs);
    if ('err' in record.outcome) {
      const { message } = record.outcome.err;
      if (record.outcome.err.kind === 'denied') {
        const payload = /^wasi error (\S+): /u.exec(message);
        if (payload) throw JSON.parse(payload[1]!);
        throw new WasiDenied(message.replace(/^trap: /u, ''));
      }
      throw new Error(message);
    }
    if (jsName === 'exit') throw new WasiExit((args[0] as { tag?: string } | undefined)?.tag === 'ok');
    const ok = record.outcome.ok;
    if (ok === null) return undefined;
    const value = fromLedger(ok, (name) => this.resources.byRecordedName(name));
    if (value !== null && typeof value === 'object' && '$err' in (value as object)) throw (value as { $err: unknown }).$err;
    this.placeResults(jsName, self, args, value);
    return value;
  }

  private record(call: string, args: Captured[], decision: 'allow' | 'deny', rule: string, outcome: CallInput['outcome'], started: number): void {
    this.recorder.appendCall({ call, args, decision, rule, outcome, durationUs: Math.round((performance.now() - started) * 1000), at: isoNow() });
  }

  private captureValue(value: ReturnType<typeof toLedger>): Captured {
    return capture(value, this.scope.capture, this.scope.maxCaptureBytes);
  }

  /** Bytes written to a stream are recorded as text when they are UTF-8 (stdout reads as text in an audit). */
  private captureArg(jsName: string, index: number, arg: unknown): Captured {
    if (index === 0 && WRITE_METHODS.has(jsName) && arg instanceof Uint8Array) {
      try {
        return this.captureValue({ $text: new TextDecoder('utf-8', { fatal: true }).decode(arg) });
      } catch {
        // not text: recorded as bytes
      }
    }
    return this.captureValue(toLedger(arg));
  }

  // ---- decisions

  private decide(qualified: string, member: string, jsName: string, self: Wrapper | undefined, args: unknown[]): Verdict {
    const g = this.grant;
    const iface = qualified.slice(0, qualified.lastIndexOf('@'));
    const allow = (rule: string): Verdict => ({ allow: true, rule });
    const refuse = (rule: string, reason: string, payload?: unknown): Verdict => ({ allow: false, rule, reason, ...(payload === undefined ? {} : { payload }) });
    const inner = self?.inner;
    if (inner instanceof CaptureSink) {
      const rule = `grants.wasi.${inner.stream}`;
      if (jsName === 'subscribe') return allow(rule);
      if ((inner.stream === 'stdout' ? g.stdout : g.stderr) !== 'capture') return refuse(rule, `${inner.stream} is deny in the policy`, STREAM_CLOSED);
      if (WRITE_METHODS.has(jsName)) {
        const size = jsName.includes('Zeroes') ? Number(args[0]) : (args[0] as Uint8Array).byteLength;
        if (size > inner.room()) return refuse('limits.maxOutputBytes', `${inner.stream} would pass limits.maxOutputBytes (${this.limits.maxOutputBytes} bytes)`, STREAM_CLOSED);
      }
      return allow(rule);
    }
    if (inner instanceof EmptySource) {
      if (jsName === 'subscribe') return allow('grants.wasi.stdin');
      return g.stdin === 'empty' ? allow('grants.wasi.stdin') : refuse('grants.wasi.stdin', 'stdin is deny in the policy', STREAM_CLOSED);
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
        const verdict = checkFsCall(jsName, this.places.get(self), args, (value) => (typeof value === 'object' && value ? this.places.get(value) : undefined));
        return verdict.ok ? allow('grants.wasi.filesystem') : refuse('grants.wasi.filesystem', verdict.reason, verdict.code);
      }
      return allow('grants.wasi.filesystem');
    }
    if (iface === 'wasi:cli/environment') return allow(member === 'get-environment' ? 'grants.wasi.env' : member === 'get-arguments' ? 'grants.wasi.args' : 'grants.wasi.cwd');
    return allow('grants.wasi');
  }

  /** Ties descriptors to their mounts: the preopens, and what openAt opens. */
  private placeResults(jsName: string, self: Wrapper | undefined, args: unknown[], value: unknown): void {
    if (jsName === 'getDirectories' && Array.isArray(value)) {
      for (const entry of value as [object, string][]) {
        const mount = this.mounts.find((m) => m.guest === entry[1]);
        if (mount && entry[0]) this.places.set(entry[0], { mount, root: this.recorded ? mount.host : rootOf(mount), host: mount.host });
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

