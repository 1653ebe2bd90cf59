/** ice:agent/log — guest messages, filtered by level and size, handed to the host's guest-log sink. */
import type * as LogInterface from '../generated/interfaces/ice-agent-log.js';
import type { Level, LogGrant } from '../policy/index.js';
import { allow, deny, overLimit, utf8Bytes, type InterfaceOperations, type RunScope } from './operation.js';

export interface GuestLogEntry {
  readonly component: string;
  readonly runId: string;
  readonly level: Level;
  readonly message: string;
}
export type GuestLogSink = (entry: GuestLogEntry) => void;

export function createLog(grant: LogGrant, scope: RunScope, sink: GuestLogSink): InterfaceOperations<typeof LogInterface> {
  const allowedLevels = [...grant.levels].join(', ');
  return {
    write: {
      decide([level, message]) {
        if (!grant.levels.has(level)) {
          return deny(
            `${grant.rule}.levels`,
            `log.write at level "${level}" denied for component "${scope.component}": ` +
              `${grant.rule}.levels is [${allowedLevels}]; add ${level} to allow it`,
          );
        }
        const size = utf8Bytes(message);
        if (size > grant.maxMessageBytes) {
          return overLimit(
            `${grant.rule}.maxMessageBytes`,
            `log.write message is ${size} bytes, over ${grant.rule}.maxMessageBytes (${grant.maxMessageBytes})`,
          );
        }
        return allow(`${grant.rule}.levels`);
      },
      perform([level, message]) {
        sink({ component: scope.component, runId: scope.runId, level, message });
        return undefined;
      },
    },
  };
}
