/** ice:agent/random — bytes from the host's CSPRNG, bounded per call by grants.random.maxBytes. */
import { randomBytes } from 'node:crypto';
import type * as RandomInterface from '../../generated/interfaces/ice-agent-random.js';
import { allow, overLimit } from '../../core/verdict.js';
import { MiB, maxCalls, messages, size, strictObject } from '../../policy/index.js';
import { fail, type AbiAnswer } from '../abi.js';
import type { Grant, IceCapability } from '../define.js';

const EXAMPLE = 'random: { maxBytes: 4096 }';
const Settings = strictObject({ maxCalls: maxCalls(), maxBytes: size(MiB, 4096) }, (got) => messages.grantNotSettings(EXAMPLE, got));

export interface RandomGrant extends Grant {
  /** Per call. */
  readonly maxBytes: number;
}

export const random: IceCapability<'random', typeof RandomInterface, RandomGrant> = {
  kind: 'ice',
  name: 'random',
  summary: 'cryptographically secure random bytes',
  policy: {
    schema: Settings,
    example: EXAMPLE,
    deniable: true,
    compile: (settings: { maxCalls: number; maxBytes: number }, { rule }) =>
      Object.freeze({ mode: 'grant', rule, maxCalls: settings.maxCalls, maxBytes: settings.maxBytes }),
  },
  functions: { bytes: { effect: 'local' } },
  operations(grant) {
    return {
      bytes: {
        decide([n]) {
          if (n > grant.maxBytes) {
            return overLimit(`${grant.rule}.maxBytes`, `random.bytes(${n}) asks for more than ${grant.rule}.maxBytes (${grant.maxBytes}) in one call`);
          }
          return allow(`${grant.rule}.maxBytes`);
        },
        perform: ([len]) => new Uint8Array(randomBytes(len)),
      },
    };
  },
  // bytes(len: u32) → result<list<u8>, error>: (len, ret); ok ptr at 4, len at 8.
  binding: (abi, { bytes }) => ({
    bytes: (len, ret) => {
      const answer = bytes!(len! >>> 0) as AbiAnswer;
      if (answer.tag === 'err') return fail(abi, ret!, 4, answer.val);
      const [ptr, n] = abi.lowerBytes(answer.val as Uint8Array);
      const p = abi.area(ret!, 12);
      abi.u8(p, 0);
      abi.u32(p + 4, ptr);
      abi.u32(p + 8, n);
    },
  }),
};
