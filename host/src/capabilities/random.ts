/** ice:agent/random — bytes from the host's CSPRNG, bounded per call by grants.random.maxBytes. */
import type * as RandomInterface from '../generated/interfaces/ice-agent-random.js';
import { randomBytes } from 'node:crypto';
import type { RandomGrant } from '../policy/index.js';
import { allow, overLimit, type InterfaceOperations } from './operation.js';

export function createRandom(grant: RandomGrant): InterfaceOperations<typeof RandomInterface> {
  return {
    bytes: {
      decide([n]) {
        if (n > grant.maxBytes) {
          return overLimit(
            `${grant.rule}.maxBytes`,
            `random.bytes(${n}) asks for more than ${grant.rule}.maxBytes (${grant.maxBytes}) in one call`,
          );
        }
        return allow(`${grant.rule}.maxBytes`);
      },
      perform: ([len]) => new Uint8Array(randomBytes(len)),
    },
  };
}
