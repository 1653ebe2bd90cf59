/**
 * ice:agent/events — domain events. The ledger is the event store: the kernel records each granted
 * emit (kind and payload, under the policy's capture rule); the effect hands it to the host's
 * listener, if the embedder set one.
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
  readonly maxPayloadBytes: number;
}

const Settings = strictObject(
  {
    maxCalls: maxCalls(),
    // Required: granting events without saying which kinds would either allow every kind or none, and
    // neither should be the silent reading of `events: {}`.
    kinds: patternList({
      rule: 'grants.events.kinds',
      prefixExample: 'counter.*',
      listExample: '["counter.*"]',
      maxBytes: KIND_PATTERN_BYTES,
      tooLong: (bytes) => `${bytes} bytes, longer than the longest event kind (${KIND_PATTERN_BYTES} bytes); shorten it`,
      missing: () => 'missing; list the event kinds this component may emit, e.g. kinds: ["counter.*"], or set "events: deny"',
    }),
    maxPayloadBytes: size(16 * 1024 * 1024, 65_536),
  },
  (got) => messages.grantNotSettings(EXAMPLE, got),
);

export const events: IceCapability<'events', typeof EventsInterface, EventsGrant> = {
  kind: 'ice',
  name: 'events',
  summary: 'domain events, recorded in the ledger',
  policy: {
    schema: Settings,
    example: EXAMPLE,
    deniable: true,
    compile: (settings: z.output<typeof Settings>, { rule }) =>
      Object.freeze({ mode: 'grant', rule, maxCalls: settings.maxCalls, kinds: compileMatchers(`${rule}.kinds`, settings.kinds), maxPayloadBytes: settings.maxPayloadBytes }),
  },
  functions: { emit: { effect: 'local' } },
  operations(grant, run) {
    const sink = run.services.events;
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
        perform([kind, payload]) {
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
