/** ice:agent/clock — wall-clock milliseconds since the Unix epoch, as the u64 jco expects (bigint). */
import type * as ClockInterface from '../generated/interfaces/ice-agent-clock.js';
import type { ClockGrant } from '../policy/index.js';
import { allow, type InterfaceOperations } from './operation.js';

export function createClock(grant: ClockGrant, now: () => number = Date.now): InterfaceOperations<typeof ClockInterface> {
  return {
    now: {
      decide: () => allow(grant.rule),
      perform: () => BigInt(Math.floor(now())),
    },
  };
}
