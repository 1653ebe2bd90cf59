/**
 * What the commands that follow the ledger share (`ice audit tail`, `ice events list --follow`): they
 * run until SIGINT or SIGTERM, and a signal is their normal end (exit 0), never an error.
 */
import { setTimeout as delay } from 'node:timers/promises';

/** An AbortSignal that fires at the first SIGINT or SIGTERM; `dispose` restores the default handlers. */
export function stopOnSignals(): { readonly signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    },
  };
}

/** Waits `ms`, or less if `signal` fires; false when it fired. */
export async function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  try {
    await delay(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

/** How often a follower polls the state database when no server pushes to it. */
export const POLL_MS = 250;

/** How long one long-poll request asks the server to wait (its limit is 30 s). */
export const LONG_POLL_MS = 25_000;
