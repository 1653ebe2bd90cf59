/**
 * What a run calls on its fresh instance: the ICE world's `run(input)`, one typed export with JSON
 * arguments, or a WASI command's `wasi:cli/run#run`. Plain data, so it crosses to a worker and is
 * recorded in the run-start (the function and the arguments or command line), which is all a replay
 * needs to call it again.
 */
import { WasiExit } from '../capabilities/wasi/index.js';
import { failureType, successType } from '../component/json-schema.js';
import { argumentsFromJson, jsName, toJson, type Json } from '../component/json-values.js';
import type { TypedFunction } from '../component/wit-types.js';
import type { RunStartRecord } from '../ledger/index.js';
import { directRuns } from './direct-run.js';

export type Invocation =
  | { readonly kind: 'run'; readonly input: string }
  | { readonly kind: 'call'; readonly fn: TypedFunction; readonly args: Readonly<Record<string, Json>> }
  | { readonly kind: 'command'; readonly export: string; readonly args: readonly string[]; readonly stdin: string };

/** What a call returned, before limits are applied: the output is JSON text for a typed call. */
export type Returned = { readonly outcome: 'ok'; readonly output: string } | { readonly outcome: 'error'; readonly error: string };

/** The text the run-start keeps as the run's input: `run`'s input, a call's arguments as JSON, a command's stdin. */
export function recordedInput(invocation: Invocation): string {
  switch (invocation.kind) {
    case 'run':
      return invocation.input;
    case 'call':
      return JSON.stringify(invocation.args);
    case 'command':
      return invocation.stdin;
  }
}

/** The run-start's `invoke` field: absent for `run`, so runs of ICE-world agents record what they always did. */
export function recordedInvoke(invocation: Invocation): RunStartRecord['invoke'] {
  switch (invocation.kind) {
    case 'run':
      return undefined;
    case 'call':
      return { kind: 'call', function: invocation.fn.name, ...(invocation.fn.interface ? { interface: invocation.fn.interface } : {}) };
    case 'command':
      return { kind: 'command', export: invocation.export, args: [...invocation.args] };
  }
}

/** A jco ComponentError (its class is made per instantiation, so recognised by shape). */
export function componentError(error: unknown): error is Error & { payload: unknown } {
  return error instanceof Error && error.constructor.name === 'ComponentError' && Object.hasOwn(error, 'payload');
}

/**
 * Calls the invocation on the instance's exports. Returns ok/error for what the guest returned; throws
 * whatever else ended the call (a trap, a limit, a host fault), for the caller to classify.
 */
export function invokeExports(exports: Record<string, unknown>, invocation: Invocation, stdout: () => string, maxOutputBytes: number): Returned {
  switch (invocation.kind) {
    case 'run': {
      const direct = directRuns.get(exports);
      if (direct) {
        const { tag, val } = direct(invocation.input);
        return tag === 'ok' ? { outcome: 'ok', output: val } : { outcome: 'error', error: val };
      }
      return { outcome: 'ok', output: (exports as { run(input: string): string }).run(invocation.input) };
    }
    case 'call':
      return callTyped(exports, invocation.fn, invocation.args, maxOutputBytes);
    case 'command': {
      const run = (exports[invocation.export] as { run?: () => void } | undefined)?.run;
      if (typeof run !== 'function') throw new TypeError(`the component exports no ${invocation.export}#run`);
      try {
        run();
        return { outcome: 'ok', output: stdout() };
      } catch (error) {
        // The command's `result` err, or wasi:cli/exit with a failure status: both are its failure exit.
        if (componentError(error)) return { outcome: 'error', error: 'the command exited with a failure status' };
        if (error instanceof WasiExit) return error.ok ? { outcome: 'ok', output: stdout() } : { outcome: 'error', error: 'the command exited with a failure status' };
        throw error;
      }
    }
  }
}

function callTyped(exports: Record<string, unknown>, fn: TypedFunction, args: Readonly<Record<string, Json>>, maxOutputBytes: number): Returned {
  const scope = (fn.interface === undefined ? exports : exports[fn.interface]) as Record<string, unknown> | undefined;
  const target = scope?.[jsName(fn.func)];
  if (typeof target !== 'function') throw new TypeError(`the component's bindings have no function ${fn.name}`);
  // Checked on the host before the run started; converted again here, where the instance lives.
  const values = argumentsFromJson(fn, args);
  let returned: unknown;
  try {
    returned = (target as (...a: unknown[]) => unknown)(...values);
  } catch (error) {
    if (fn.result?.kind === 'result' && componentError(error)) {
      const type = failureType(fn);
      return { outcome: 'error', error: JSON.stringify(type === undefined ? null : toJson(type, error.payload, maxOutputBytes)) };
    }
    throw error;
  }
  const type = successType(fn);
  return { outcome: 'ok', output: JSON.stringify(type === undefined ? null : toJson(type, returned, maxOutputBytes)) };
}
