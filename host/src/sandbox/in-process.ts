/**
 * In-process execution of one run: a fresh component instance per run (an agent's memory is its kv,
 * never leftover instance state, and a trapped instance is poisoned), the guest's `run` called
 * synchronously, and whatever it ends with classified for the ledger's run-end record.
 */
import type { PreparedComponent } from '../component/prepare.js';
import type { CapabilityName } from '../component/wit.js';
import { HostFault, type RunMediator } from '../mediator/mediator.js';

export type RunEnding =
  | { readonly outcome: 'ok'; readonly output: string }
  | { readonly outcome: 'error'; readonly error: string }
  | { readonly outcome: 'trap'; readonly blame: 'guest' | 'host'; readonly reason: string };

export function runInProcess(
  prepared: PreparedComponent,
  imported: readonly CapabilityName[],
  mediator: RunMediator,
  input: string,
): RunEnding {
  try {
    const instance = prepared.instantiate(mediator.importObject(imported));
    const output = instance.run(input);
    return { outcome: 'ok', output };
  } catch (error) {
    return classify(error, mediator);
  }
}

/**
 * jco raises a guest's `err(...)` as its own ComponentError carrying `payload` (its class is created
 * per instantiation, so it is recognised by shape); a wasm trap is a WebAssembly.RuntimeError; a
 * stack overflow in the guest surfaces as a RangeError. Anything else escaped the host's own code.
 */
export function classify(error: unknown, mediator: RunMediator): RunEnding {
  if (mediator.hostFault) return { outcome: 'trap', blame: 'host', reason: mediator.hostFault.message };
  if (error instanceof HostFault) return { outcome: 'trap', blame: 'host', reason: error.message };
  if (error instanceof Error && error.constructor.name === 'ComponentError' && Object.hasOwn(error, 'payload')) {
    const payload = (error as Error & { payload: unknown }).payload;
    return { outcome: 'error', error: typeof payload === 'string' ? payload : String(payload) };
  }
  if (error instanceof WebAssembly.RuntimeError) {
    // V8 already words these as `wasm trap: ...` on some versions; say it once.
    const reason = error.message.startsWith('wasm trap') ? error.message : `wasm trap: ${error.message}`;
    return { outcome: 'trap', blame: 'guest', reason };
  }
  if (error instanceof RangeError && /call stack/i.test(error.message)) {
    return { outcome: 'trap', blame: 'guest', reason: 'wasm trap: call stack exhausted' };
  }
  const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return { outcome: 'trap', blame: 'host', reason: `host error while running the guest: ${reason}` };
}
