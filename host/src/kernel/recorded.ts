/**
 * The recorded answerer: answers a replay's calls from the run's ledger — clock readings, random bytes,
 * kv reads, responses, denials and limits alike — and checks that the guest makes exactly the recorded
 * calls with the recorded arguments. It decides nothing, performs nothing and writes nothing.
 */
import { capture, type Captured } from '../core/capture.js';
import { Unrecorded, type Answer, type CallSite } from '../capabilities/define.js';
import type { LedgerCall } from '../ledger/calls.js';
import { displayCall, formatCaptured } from '../ledger/format.js';
import type { RunEndRecord } from '../ledger/records.js';
import { COMPACT_ARG_BYTES, LEDGER_RULE } from '../ledger/budget.js';
import { LedgerBudgetSpent, type Answerer } from './kernel.js';

/** The run cannot be replayed at all (as opposed to replaying and diverging). */
export class ReplayError extends Error {
  override readonly name = 'ReplayError';
}

/** Thrown into the guest when the replay must stop (a divergence, or the end of what was recorded). */
class ReplayStop extends Error {}

const ARG_MAX = 60;

export interface Divergence {
  readonly seq: number;
  readonly expected: string;
  readonly actual: string;
}

export class RecordedAnswerer implements Answerer {
  readonly hostFault = undefined;
  /** Index of the next recorded call (hops make it run ahead of the calls the guest made). */
  private next = 0;
  divergence: Divergence | undefined;
  /** A recorded answer the replay cannot give (recorded as a digest). */
  unreplayable: ReplayError | undefined;
  /**
   * Why the replay stopped before the recorded run-end without diverging: the run was stopped by its
   * deadline or its process died after these calls, or the ledger cannot know a call's outcome.
   */
  stoppedFromOutside: string | undefined;

  constructor(
    private readonly settings: { readonly capture: 'full' | 'digest'; readonly maxCaptureBytes: number },
    private readonly calls: readonly LedgerCall[],
    private readonly end: RunEndRecord,
  ) {}

  /** Recorded calls the replay consumed. */
  get consumed(): number {
    return this.next;
  }

  answer(site: CallSite, args: unknown[]): Answer {
    const expected = this.calls[this.next++];
    // A call refused for the ledger budget was recorded compactly (live.ts): compare it as it was recorded.
    const compact = expected?.rule === LEDGER_RULE && expected.decision === 'limit' && expected.resultSeq === undefined;
    const max = compact ? COMPACT_ARG_BYTES : site.keepWhole ? Number.POSITIVE_INFINITY : this.settings.maxCaptureBytes;
    const actual = site.form.args(args).map((arg) => capture(arg, this.settings.capture, max));
    if (expected === undefined) {
      // The run was stopped for calling on past its ledger budget: the replay stops it the same way.
      if (this.end.outcome === 'trap' && this.end.blame === 'guest' && this.calls.at(-1)?.rule === LEDGER_RULE) throw new LedgerBudgetSpent(this.end.reason ?? '');
      if ((this.end.outcome === 'limit' && this.end.limit === 'timeout') || this.end.outcome === 'incomplete') {
        this.stoppedFromOutside = `the original run ended ${this.end.outcome} after these calls; the replay stopped there`;
      } else this.divergence = { seq: this.end.seq, expected: `run-end (${this.end.outcome})`, actual: describeCall(site.call, actual) };
      throw new ReplayStop('replay stopped');
    }
    if (expected.hop !== undefined || expected.call !== site.call || JSON.stringify(expected.args) !== JSON.stringify(actual)) {
      this.divergence = { seq: expected.seq, expected: describeCall(expected.call, expected.args), actual: describeCall(site.call, actual) };
      throw new ReplayStop('replay diverged');
    }
    if (expected.outcome === undefined) {
      // The run stopped during this call's effect: whether it happened, and what it answered, is unknown.
      this.stoppedFromOutside = `the original run stopped during seq ${expected.seq} (${displayCall(expected.call)}), whose outcome is unknown; the replay stopped there`;
      throw new ReplayStop('outcome unknown');
    }
    // A call the host followed redirects for: its hops are the records after it; the guest got the last one's answer.
    let answered = expected;
    while (this.calls[this.next]?.hop !== undefined) answered = this.calls[this.next++]!;
    return this.answerFrom(site, answered);
  }

  private answerFrom(site: CallSite, call: LedgerCall): Answer {
    const outcome = call.outcome!;
    if ('err' in outcome) {
      // A host fault was a trap for the guest, not an answer.
      if (outcome.err.kind === 'failed' && this.end.outcome === 'trap' && this.end.blame === 'host' && this.next === this.calls.length) {
        throw new Error(outcome.err.message);
      }
      return { tag: 'err', val: { tag: outcome.err.kind, val: outcome.err.message } };
    }
    if (outcome.ok === null) return { tag: 'ok', val: undefined };
    try {
      return { tag: 'ok', val: decodeResult(site, outcome.ok) };
    } catch (error) {
      if (error instanceof Unrecorded) {
        this.unreplayable = new ReplayError(
          'sha256' in outcome.ok
            ? `seq ${call.seq} (${displayCall(call.call)}) recorded its result as a digest, so the run cannot be replayed`
            : `seq ${call.seq} (${displayCall(call.call)}) cannot be replayed: ${error.message}`,
        );
      }
      throw error;
    }
  }
}

function decodeResult(site: CallSite, recorded: Captured): unknown {
  if ('sha256' in recorded) throw new Unrecorded('recorded as a digest');
  return site.form.decode(recorded);
}

export function describeCall(call: string, args: readonly Captured[]): string {
  return `${displayCall(call)}(${args.map((a) => formatCaptured(a, ARG_MAX)).join(', ')})`;
}
