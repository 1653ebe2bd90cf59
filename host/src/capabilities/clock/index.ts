/** ice:agent/clock — wall-clock milliseconds since the Unix epoch, as the u64 jco expects (bigint). */
import type * as ClockInterface from '../../generated/interfaces/ice-agent-clock.js';
import { allow } from '../../core/verdict.js';
import { maxCalls, messages, strictObject } from '../../policy/index.js';
import { fail, type AbiAnswer } from '../abi.js';
import { Unrecorded, type Grant, type IceCapability } from '../define.js';
import { PLAIN_FORM } from '../forms.js';

const EXAMPLE = 'clock: {}';
const Settings = strictObject({ maxCalls: maxCalls() }, (got) => messages.grantNotSettings(EXAMPLE, got));

export type ClockGrant = Grant;

export const clock: IceCapability<'clock', typeof ClockInterface, ClockGrant> = {
  kind: 'ice',
  name: 'clock',
  summary: 'wall-clock time',
  policy: {
    schema: Settings,
    example: EXAMPLE,
    deniable: true,
    compile: (settings: { maxCalls: number }, { rule }) => Object.freeze({ mode: 'grant', rule, maxCalls: settings.maxCalls }),
  },
  functions: {
    now: {
      effect: 'local',
      // A u64 is recorded as its decimal string (JSON has no 64-bit integers) and replayed as a bigint.
      form: {
        ...PLAIN_FORM,
        decode: (recorded) => {
          if (!('value' in recorded) || (typeof recorded.value !== 'string' && typeof recorded.value !== 'number')) throw new Unrecorded('not a u64');
          return BigInt(recorded.value);
        },
      },
    },
  },
  operations(grant, run) {
    const now = run.services.now ?? Date.now;
    return {
      now: {
        decide: () => allow(grant.rule),
        perform: () => BigInt(Math.floor(now())),
      },
    };
  },
  // now() → result<u64, error>: (ret); ok u64 at 8, err at 8.
  binding: (abi, { now }) => ({
    now: (ret) => {
      const answer = now!() as AbiAnswer;
      if (answer.tag === 'ok') {
        const p = abi.area(ret!, 16);
        abi.u8(p, 0);
        abi.u64(p + 8, answer.val as bigint);
      } else fail(abi, ret!, 8, answer.val);
    },
  }),
};
