/** ice:agent/clock — wall-clock milliseconds since the Unix epoch, as the u64 jco expects (bigint). */
import type { ClockGrant } from '../policy/index.js';
import { allow, type CapabilityOperations } from './operation.js';

export function createClock(grant: ClockGrant, now: () => number = Date.now): CapabilityOperations {
  return {
    now: {
      decide: () => allow(grant.rule),
      perform: () => BigInt(Math.floor(now())),
    },
  };
}
