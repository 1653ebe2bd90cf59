/**
 * ice:agent/events — domain events. The ledger is the event store: the kernel records each granted
 * emit (kind and payload, under the policy's capture rule). The effect is a state write: in the
 * transaction of the emit's record it queues the event's deliveries to the agents `ice serve` has
 * subscribed to its kind (views/deliveries.ts), so an event is never recorded without its deliveries
 * nor delivered without being recorded; then it hands the event to the host's listener, if any.
 *
 * `receive` is the other direction: the kinds this component may be woken by (`ice serve` triggers).
 * Deny by default: without it, no event is ever delivered to the component, whatever its triggers say.
 */
import type { z } from 'zod';
import type * as EventsInterface from '../../generated/interfaces/ice-agent-events.js';
import { quote, utf8Bytes } from '../../core/text.js';
import { allow, deny, invalid, overLimit } from '../../core/verdict.js';
import { compileMatchers, firstMatch, maxCalls, messages, patternList, size, strictObject, type Matcher } from '../../policy/index.js';
import { unit, type AbiAnswer } from '../abi.js';
import type { Grant, IceCapability } from '../define.js';

export type { GuestEvent, GuestEventSink } from '../run-services.js';

/** Kinds are names, not data: short, printable, dotted (`counter.incremented`). */
const KIND_SHAPE = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;
/** Longest kind pattern, in UTF-8 bytes (kinds have no per-policy maximum, unlike kv keys). */
const KIND_PATTERN_BYTES = 256;
const EXAMPLE = 'events: { kinds: ["counter.*"] }';

export interface EventsGrant extends Grant {
  readonly kinds: readonly Matcher[];
  /** The kinds this component may receive (`ice serve` event triggers); empty: none. */
  readonly receive: readonly Matcher[];
  /** The `receive` patterns as written, for the server's subscription table. */
  readonly receivePatterns: readonly string[];
  readonly maxPayloadBytes: number;
}

const kindPatterns = (rule: string, verb: string, key: string, list: string) =>
  patternList({
    rule,
    prefixExample: 'counter.*',
    listExample: list,
    maxBytes: KIND_PATTERN_BYTES,
    tooLong: (bytes) => `${bytes} bytes, longer than the longest event kind (${KIND_PATTERN_BYTES} bytes); shorten it`,
    missing: () => `missing; list the event kinds this component may ${verb}, e.g. ${key}: ${list}`,
  });

const Settings = strictObject(
  {
    maxCalls: maxCalls(),
    kinds: kindPatterns('grants.events.kinds', 'emit', 'kinds', '["counter.*"]').optional(),
    receive: kindPatterns('grants.events.receive', 'receive', 'receive', '["notes.*"]').optional(),
    maxPayloadBytes: size(16 * 1024 * 1024, 65_536),
  },
  (got) => messages.grantNotSettings(EXAMPLE, got),
).superRefine((settings, ctx) => {
  // Granting events without saying which kinds would either allow every kind or none, and neither
  // should be the silent reading of `events: {}`.
  if (settings.kinds === undefined && settings.receive === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['kinds'],
      message: 'missing; list the event kinds this component may emit, e.g. kinds: ["counter.*"], and/or those it may receive, e.g. receive: ["notes.*"]; or set "events: deny"',
    });
  }
});

export const events: IceCapability<'events', typeof EventsInterface, EventsGrant> = {
  kind: 'ice',
  name: 'events',
  summary: 'domain events, recorded in the ledger',
  policy: {
    schema: Settings,
    example: EXAMPLE,
    deniable: true,
    compile: (settings: z.output<typeof Settings>, { rule }) =>
      Object.freeze({
        mode: 'grant',
        rule,
        maxCalls: settings.maxCalls,
        kinds: compileMatchers(`${rule}.kinds`, settings.kinds ?? []),
        receive: compileMatchers(`${rule}.receive`, settings.receive ?? []),
        receivePatterns: Object.freeze([...(settings.receive ?? [])]),
        maxPayloadBytes: settings.maxPayloadBytes,
      }),
  },
  // A state effect: its deliveries commit with its record.
  functions: { emit: { effect: 'state' } },
  operations(grant, run) {
    const sink = run.services.events;
    const deliveries = run.services.deliveries;
    return {
      emit: {
        decide([kind, payload]) {
          if (!KIND_SHAPE.test(kind)) {
            return invalid(
              `${grant.rule}.kinds`,
              `events.emit: kind ${quote(kind)} is not a valid event kind (1-128 characters: letters, digits, . _ : / -, starting with a letter or digit)`,
            );
          }
          const rule = firstMatch(grant.kinds, kind);
          if (!rule) {
            return deny(`${grant.rule}.kinds`, `events.emit(${quote(kind)}) denied for component "${run.component}": no kind rule matches; add ${quote(kind)} to ${grant.rule}.kinds`);
          }
          const bytes = utf8Bytes(payload);
          if (bytes > grant.maxPayloadBytes) {
            return overLimit(`${grant.rule}.maxPayloadBytes`, `events.emit(${quote(kind)}): the payload is ${bytes} bytes, over ${grant.rule}.maxPayloadBytes (${grant.maxPayloadBytes})`);
          }
          return allow(rule.rule);
        },
        perform([kind, payload], call) {
          if (deliveries !== undefined && call.seq !== undefined) deliveries({ run: run.runId, seq: call.seq, kind, payload, source: run.component });
          sink?.({ component: run.component, runId: run.runId, kind, payload });
          return undefined;
        },
      },
    };
  },
  // emit(kind: string, payload: string) → result<_, error>.
  binding: (abi, { emit }) => ({
    emit: (kp, kl, pp, pl, ret) => unit(abi, ret!, emit!(abi.string(kp!, kl!), abi.string(pp!, pl!)) as AbiAnswer),
  }),
};
