/** ice:agent/log — guest messages, filtered by level and size, handed to the host's guest-log sink. */
import { z } from 'zod';
import type * as LogInterface from '../../generated/interfaces/ice-agent-log.js';
import { utf8Bytes } from '../../core/text.js';
import { allow, deny, overLimit } from '../../core/verdict.js';
import { MiB, SealedSet, describeValue, maxCalls, messages, size, strictObject } from '../../policy/index.js';
import { unit, type AbiAnswer } from '../abi.js';
import type { Grant, IceCapability } from '../define.js';
import type { Level } from '../run-services.js';

export type { GuestLogEntry, GuestLogSink, Level } from '../run-services.js';

export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const satisfies readonly Level[];
const LEVEL_LIST = LEVELS.join(', ');
const EXAMPLE = 'log: { levels: [info, warn, error] }';

export interface LogGrant extends Grant {
  readonly levels: ReadonlySet<Level>;
  readonly maxMessageBytes: number;
}

const Settings = strictObject(
  {
    levels: z
      .array(z.enum(LEVELS, { error: (issue) => `unknown level ${describeValue(issue.input)}; use one of ${LEVEL_LIST}` }), {
        error: (issue) => `expected a list of levels (${LEVEL_LIST}), got ${describeValue(issue.input)}`,
      })
      .superRefine((levels, ctx) => {
        const seen = new Set<string>();
        levels.forEach((level, index) => {
          if (seen.has(level)) ctx.addIssue({ code: 'custom', path: [index], message: `duplicate level "${level}"; remove one` });
          seen.add(level);
        });
      })
      // A set of levels: canonical order, so `[warn, info]` and `[info, warn]` are the same policy (same digest).
      .transform((levels) => LEVELS.filter((level) => levels.includes(level)))
      .default(() => [...LEVELS]),
    maxCalls: maxCalls(),
    maxMessageBytes: size(MiB, 4096),
  },
  (got) => messages.grantNotSettings(EXAMPLE, got),
);

export const log: IceCapability<'log', typeof LogInterface, LogGrant> = {
  kind: 'ice',
  name: 'log',
  summary: 'structured guest logging, by level and size',
  policy: {
    schema: Settings,
    example: EXAMPLE,
    deniable: true,
    compile: (settings: z.output<typeof Settings>, { rule }) =>
      Object.freeze({ mode: 'grant', rule, levels: new SealedSet<Level>(settings.levels), maxCalls: settings.maxCalls, maxMessageBytes: settings.maxMessageBytes }),
  },
  functions: { write: { effect: 'local' } },
  operations(grant, run) {
    const allowedLevels = [...grant.levels].join(', ');
    const sink = run.services.guestLog;
    return {
      write: {
        decide([level, message]) {
          if (!grant.levels.has(level)) {
            return deny(
              `${grant.rule}.levels`,
              `log.write at level "${level}" denied for component "${run.component}": ` +
                `${grant.rule}.levels is [${allowedLevels}]; add ${level} to allow it`,
            );
          }
          const bytes = utf8Bytes(message);
          if (bytes > grant.maxMessageBytes) {
            return overLimit(
              `${grant.rule}.maxMessageBytes`,
              `log.write message is ${bytes} bytes, over ${grant.rule}.maxMessageBytes (${grant.maxMessageBytes})`,
            );
          }
          return allow(`${grant.rule}.levels`);
        },
        perform([level, message]) {
          sink?.({ component: run.component, runId: run.runId, level, message });
          return undefined;
        },
      },
    };
  },
  // write(level: enum, message: string) → result<_, error>: (level, ptr, len, ret).
  binding: (abi, { write }) => ({
    write: (level, ptr, len, ret) => unit(abi, ret!, write!(abi.enumCase(LEVELS, level!, 'log level'), abi.string(ptr!, len!)) as AbiAnswer),
  }),
};
