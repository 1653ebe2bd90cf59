/**
 * ice:agent/events — domain events. The ledger is the event store: the mediator records each granted
 * emit (kind and payload, under the policy's capture rule); the effect hands it to the host's
 * listener, if the embedder set one.
 */
import type * as EventsInterface from '../generated/interfaces/ice-agent-events.js';
import { firstMatch, type EventsGrant } from '../policy/index.js';
import { allow, deny, invalid, overLimit, quote, utf8Bytes, type InterfaceOperations, type RunScope } from './operation.js';

export interface GuestEvent {
  readonly component: string;
  readonly runId: string;
  readonly kind: string;
  readonly payload: string;
}
export type GuestEventSink = (event: GuestEvent) => void;

/** Kinds are names, not data: short, printable, dotted (`counter.incremented`). */
const KIND_SHAPE = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

export function createEvents(grant: EventsGrant, scope: RunScope, sink: GuestEventSink | undefined): InterfaceOperations<typeof EventsInterface> {
  return {
    emit: {
      decide([k, payload]) {
        if (!KIND_SHAPE.test(k)) {
          return invalid(
            `${grant.rule}.kinds`,
            `events.emit: kind ${quote(k)} is not a valid event kind (1-128 characters: letters, digits, . _ : / -, starting with a letter or digit)`,
          );
        }
        const rule = firstMatch(grant.kinds, k);
        if (!rule) {
          return deny(
            `${grant.rule}.kinds`,
            `events.emit(${quote(k)}) denied for component "${scope.component}": no kind rule matches; add ${quote(k)} to ${grant.rule}.kinds`,
          );
        }
        const size = utf8Bytes(payload);
        if (size > grant.maxPayloadBytes) {
          return overLimit(
            `${grant.rule}.maxPayloadBytes`,
            `events.emit(${quote(k)}): the payload is ${size} bytes, over ${grant.rule}.maxPayloadBytes (${grant.maxPayloadBytes})`,
          );
        }
        return allow(rule.rule);
      },
      perform([kind, payload]) {
        sink?.({ component: scope.component, runId: scope.runId, kind, payload });
        return undefined;
      },
    },
  };
}
