/**
 * What a `perform` may return besides its value: a refusal it found while doing the effect, or the steps
 * of an effect that took more than one (an HTTP fetch that followed redirects). Plain classes and types,
 * shared by the capabilities that return them and the kernel that records them.
 */
import type { ApprovalRecord, Refusal } from '../core/verdict.js';

/**
 * Returned by a `perform` that finds, while doing the effect, that the answer would break a budget
 * (e.g. a listing larger than the host returns): the call is then recorded and answered as refused.
 */
export class RefusedEffect {
  constructor(readonly refusal: Refusal) {}
}

/** How one host-side step of a call ended: its value, a refusal found while doing it, or a failure. */
export type WireStep<T> = { readonly ok: T } | { readonly refused: Refusal } | { readonly failed: string };
export type StepResult = WireStep<unknown>;

/** One more record a call produced after its first (a redirect hop): its own arguments, decision and result. */
export interface FollowUp {
  readonly args: readonly unknown[];
  readonly rule: string;
  readonly result: StepResult;
  readonly durationUs: number;
  readonly approval?: ApprovalRecord;
}

/**
 * Returned by a `perform` whose effect took more than one step (an HTTP fetch that followed redirects, or
 * one that failed): `first` is the outcome of the call as the guest made it, `followUps` the records of
 * the hops after it. The guest gets the last step's result.
 */
export class Steps {
  constructor(
    readonly first: StepResult,
    readonly followUps: readonly FollowUp[] = [],
  ) {}
}
