/**
 * The host services a run's capabilities use, constructible from plain data in any thread (a worker
 * opens its own state database; sinks post to the host thread). What a run emits to the host — guest
 * log lines, events, WASI stdout/stderr — is plain data, so it crosses threads as is.
 */
import type { EmittedEvent } from '../views/deliveries.js';
import type { KvStore } from '../views/kv-store.js';

export type { EmittedEvent } from '../views/deliveries.js';

export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export interface GuestLogEntry {
  readonly component: string;
  readonly runId: string;
  readonly level: Level;
  readonly message: string;
}
export type GuestLogSink = (entry: GuestLogEntry) => void;

export interface GuestEvent {
  readonly component: string;
  readonly runId: string;
  readonly kind: string;
  readonly payload: string;
}
export type GuestEventSink = (event: GuestEvent) => void;

/** Queues an event's deliveries, inside the transaction of its call record. */
export type DeliverySink = (event: EmittedEvent) => void;

export type StdStream = 'stdout' | 'stderr';

export interface WasiOutputEntry {
  readonly component: string;
  readonly runId: string;
  readonly stream: StdStream;
  readonly text: string;
}
export type WasiOutputSink = (entry: WasiOutputEntry) => void;

export interface RunServices {
  /** The components' kv data (kv). */
  readonly kv?: KvStore;
  /** Receives every granted log.write (log). */
  readonly guestLog?: GuestLogSink;
  /** Receives every granted events.emit (events); the ledger records them either way. */
  readonly events?: GuestEventSink;
  /** Queues the deliveries of every granted events.emit, in the transaction of its record (events). */
  readonly deliveries?: DeliverySink;
  /** Receives what a WASI guest writes to its captured stdout and stderr. */
  readonly wasiOutput?: WasiOutputSink;
  /** The wall clock (clock); default Date.now. */
  readonly now?: () => number;
}
