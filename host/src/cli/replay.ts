/** `ice replay <run-id | last> [--component <path> | --against <path>] [--state <dir>]` */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createHost } from '../host.js';
import { MAX_COMPONENT_BYTES_OPTION, maxComponentBytes } from './component-size.js';
import { ReplayError } from '../replay/replay.js';
import { onePositional, withUsage, UsageError } from './args.js';
import { EXIT, type Io } from './io.js';
import { REPLAY_USAGE } from './usage.js';
import { checkStateDir } from './paths.js';

export async function replayCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = withUsage('replay', REPLAY_USAGE, () =>
    parseArgs({
      args: argv,
      options: { component: { type: 'string' }, against: { type: 'string' }, timeout: { type: 'string' }, state: { type: 'string' }, ...MAX_COMPONENT_BYTES_OPTION },
      allowPositionals: true,
      strict: true,
    }),
  );
  const wanted = onePositional('replay', positionals, 'run id (or `last`)', REPLAY_USAGE);
  const stateDir = checkStateDir('replay', values.state, false);
  if (!existsSync(join(stateDir, 'ice.db'))) {
    throw new UsageError(`ice replay: no ICE state in ${stateDir} (no ice.db): pass --state <dir>`);
  }
  if (values.component !== undefined && values.against !== undefined) {
    throw new UsageError(`ice replay: give --component (the recorded component) or --against (another one), not both\nusage: ${REPLAY_USAGE}`);
  }
  const timeoutMs = values.timeout === undefined ? undefined : replayTimeout(values.timeout);
  const host = await createHost({ stateDir, execution: 'in-process', maxComponentBytes: maxComponentBytes('replay', values['max-component-bytes']) });
  try {
    const report = await host.replay(wanted, values.against ?? values.component, { otherComponent: values.against !== undefined, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
    const ms = `${report.durationMs.toFixed(1)} ms`;
    if (report.matches) {
      const note = report.note ? ` (${report.note})` : '';
      io.stdout(`replay matches: ${report.calls} calls, ${report.outcome}, fuel ${report.fuel}, in ${ms}${note}\n`);
      return EXIT.ok;
    }
    io.stdout(`replay diverges at seq ${report.seq}: expected ${report.expected}, got ${report.actual}\n`);
    return EXIT.checkFailed;
  } catch (error) {
    if (error instanceof ReplayError) throw new UsageError(`ice replay: ${error.message}`);
    throw error;
  } finally {
    host.close();
  }
}

/** Replay's own deadline; bounded like limits.timeoutMs. */
function replayTimeout(text: string): number {
  const ms = /^\d{1,7}$/u.test(text) ? Number(text) : Number.NaN;
  if (!(ms >= 1 && ms <= 3_600_000)) throw new UsageError(`ice replay: --timeout ${JSON.stringify(text)} is not a number of milliseconds from 1 to 3600000\nusage: ${REPLAY_USAGE}`);
  return ms;
}
