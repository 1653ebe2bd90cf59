/**
 * `ice serve --config ice.yaml [--state dir] [--listen 127.0.0.1:7700]`: the config's agents as a
 * long-running server (serve/). It runs until SIGINT or SIGTERM, then stops taking runs, gives those in
 * flight `--drain-ms` (default 10 s) to end, and ends the rest `incomplete`. A second signal during the
 * drain stops at once (the next start recovers what was cut off).
 */
import { parseArgs } from 'node:util';
import pino from 'pino';
import { loadSecretsFile } from '../capabilities/secrets.js';
import { terminalSafe } from '../core/text.js';
import { loadMcpConfig } from '../mcp/config.js';
import { ServeSetupError } from '../serve/files.js';
import { ClusterError } from '../cluster/node.js';
import { startServer } from '../serve/server.js';
import { UsageError, withUsage } from './args.js';
import { MAX_COMPONENT_BYTES_OPTION, maxComponentBytes } from './component-size.js';
import { EXIT, type Io } from './io.js';
import { checkStateDir } from './paths.js';
import { SERVE_USAGE } from './usage.js';

const DEFAULT_DRAIN_MS = 10_000;

export async function serveCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = withUsage('serve', SERVE_USAGE, () =>
    parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        state: { type: 'string' },
        listen: { type: 'string' },
        'token-file': { type: 'string' },
        'drain-ms': { type: 'string' },
        'allow-origin': { type: 'string', multiple: true },
        workers: { type: 'string' },
        secrets: { type: 'string' },
        db: { type: 'string' },
        'lease-ms': { type: 'string' },
        ...MAX_COMPONENT_BYTES_OPTION,
      },
      allowPositionals: true,
      strict: true,
    }),
  );
  if (positionals.length > 0) throw new UsageError(`ice serve: unexpected ${positionals.join(' ')}: the agents come from --config\nusage: ${SERVE_USAGE}`);
  if (!values.config) throw new UsageError(`ice serve: --config <ice.yaml> is required: it names each agent's component, policy and triggers\nusage: ${SERVE_USAGE}`);
  const drainMs = values['drain-ms'] === undefined ? DEFAULT_DRAIN_MS : wholeNumber('--drain-ms', values['drain-ms'], 0, 3_600_000);
  const workers = values.workers === undefined ? undefined : wholeNumber('--workers', values.workers, 1, 256);
  const db = values.db;
  if (db !== undefined && !/^postgres(ql)?:\/\//u.test(db)) throw new UsageError(`ice serve: --db takes a PostgreSQL URL (postgres://user@host:port/database), got ${JSON.stringify(db.replace(/:[^:@/]*@/u, ':***@'))}\nusage: ${SERVE_USAGE}`);
  const leaseMs = values['lease-ms'] === undefined ? undefined : wholeNumber('--lease-ms', values['lease-ms'], 300, 600_000);
  if (leaseMs !== undefined && db === undefined) throw new UsageError(`ice serve: --lease-ms applies to a cluster: add --db postgres://…\nusage: ${SERVE_USAGE}`);
  const config = loadMcpConfig(values.config, 'serve');
  const secrets = values.secrets !== undefined ? loadSecretsFile(values.secrets) : undefined;
  const logger = pino({ name: 'ice-serve', level: process.env.ICE_LOG_LEVEL ?? 'info' }, pino.destination({ fd: 2, sync: true }));
  let stop!: (signal: string) => void;
  const stopped = new Promise<string>((resolve) => (stop = resolve));
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  let server;
  try {
    server = await startServer(config, {
      stateDir: checkStateDir('serve', values.state, true),
      ...(values.listen !== undefined ? { listen: values.listen } : {}),
      ...(values['token-file'] !== undefined ? { tokenFile: values['token-file'] } : {}),
      ...(values['allow-origin'] ? { allowOrigins: values['allow-origin'] } : {}),
      ...(db !== undefined ? { cluster: { url: db, ...(leaseMs !== undefined ? { leaseMs } : {}) } } : {}),
      logger,
      host: {
        logger,
        maxComponentBytes: maxComponentBytes('serve', values['max-component-bytes']),
        ...(workers !== undefined ? { workers } : {}),
        ...(secrets ? { secrets, secretsSource: `the secrets file ${values.secrets}` } : {}),
        onGuestLog: (e) => {
          if (logger.isLevelEnabled('info')) logger.info({ guest: e.component, run: e.runId, guestLevel: e.level }, terminalSafe(e.message));
        },
      },
    });
  } catch (error) {
    if (error instanceof ServeSetupError || error instanceof ClusterError) throw new UsageError(`ice serve: ${error.message}`);
    throw error;
  }
  io.stderr(`ice serve: ${config.agents.length} agent${config.agents.length === 1 ? '' : 's'} (${config.agents.map((a) => a.name).join(', ')}) on ${server.url}\n`);
  const signal = await stopped;
  // A second signal while draining: stop now; the next start ends the cut-off runs incomplete.
  const now = () => process.exit(EXIT.ok);
  process.once('SIGINT', now);
  process.once('SIGTERM', now);
  io.stderr(`ice serve: ${signal}: draining runs in flight (up to ${drainMs} ms)\n`);
  const cut = await server.close(drainMs);
  if (cut.length > 0) io.stderr(`ice serve: ended ${cut.length} run${cut.length === 1 ? '' : 's'} incomplete at the drain deadline: ${cut.join(', ')}\n`);
  io.stderr('ice serve: stopped\n');
  process.off('SIGINT', now).off('SIGTERM', now);
  return EXIT.ok;
}

function wholeNumber(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/u.test(value) || n < min || n > max) throw new UsageError(`ice serve: ${flag} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}\nusage: ${SERVE_USAGE}`);
  return n;
}
