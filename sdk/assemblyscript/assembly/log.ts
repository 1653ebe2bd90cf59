// ice:agent/log: structured guest logging; every message lands in the run's audit ledger.
import { _log_write } from "./imports";
import { IMPORT_RET, freeBlock, loweredLen, lowerString, takeStatus } from "./abi";
import { Status } from "./result";

/** log.level, in WIT order. */
export enum Level {
  Trace = 0,
  Debug = 1,
  Info = 2,
  Warn = 3,
  Error = 4,
}

export namespace log {
  /**
   * Writes one message at `level`. The status says whether the host accepted it (a policy may deny a
   * level or cap calls); ignoring it is fine.
   */
  export function write(level: Level, message: string): Status {
    const p = lowerString(message);
    _log_write(<i32>level, p, loweredLen, IMPORT_RET);
    freeBlock(p);
    return takeStatus();
  }
  export function trace(message: string): Status { return write(Level.Trace, message); }
  export function debug(message: string): Status { return write(Level.Debug, message); }
  export function info(message: string): Status { return write(Level.Info, message); }
  export function warn(message: string): Status { return write(Level.Warn, message); }
  export function error(message: string): Status { return write(Level.Error, message); }
}
