/** ice:agent/log — guest messages, filtered by level and size, handed to the host's guest-log sink. */
import type { Level, LogGrant } from '../policy/index.js';
import { allow, deny, overLimit, utf8Bytes, type CapabilityOperations, type RunScope } from './operation.js';

export interface GuestLogEntry {
  readonly component: string;
  readonly runId: string;
  readonly level: Level;
  readonly message: string;
}
export type GuestLogSink = (entry: GuestLogEntry) => void;

export function createLog(grant: LogGrant, scope: RunScope, sink: GuestLogSink): CapabilityOperations {
  const allowedLevels = [...grant.levels].join(', ');
  return {
    write: {
      decide([level, message]) {
        if (!grant.levels.has(level as Level)) {
          return deny(
            `${grant.rule}.levels`,
            `log.write at level "${String(level)}" denied for component "${scope.component}": ` +
              `${grant.rule}.levels is [${allowedLevels}]; add ${String(level)} to allow it`,
          );
        }
        const size = utf8Bytes(message as string);
        if (size > grant.maxMessageBytes) {
          return overLimit(
            `${grant.rule}.maxMessageBytes`,
            `log.write message is ${size} bytes, over ${grant.rule}.maxMessageBytes (${grant.maxMessageBytes})`,
          );
        }
        return allow(`${grant.rule}.levels`);
      },
      perform([level, message]) {
        sink({ component: scope.component, runId: scope.runId, level: level as Level, message: message as string });
        return undefined;
      },
    },
  };
}
