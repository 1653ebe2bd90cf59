/**
 * What `ice serve` keeps in the state directory for its clients (`<state>/serve/`): the bearer token
 * (owner-only, made at first start) and `server.json`, the running server's address and pid, which is
 * also the lock that keeps a second server off the same state (two would deliver the same events).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { processAlive } from '../ledger/recover.js';

export interface ServerInfo {
  readonly url: string;
  readonly pid: number;
  readonly started: string;
  /** Where the token is, for clients on this machine. */
  readonly tokenFile: string;
}

/** A problem with the server's files that stops it from starting; the message says the fix. */
export class ServeSetupError extends Error {
  override readonly name = 'ServeSetupError';
}

const TOKEN = /^[A-Za-z0-9._~+/=-]{32,512}$/u;

export function serveDir(stateDir: string): string {
  return join(stateDir, 'serve');
}

export function serverInfoPath(stateDir: string): string {
  return join(serveDir(stateDir), 'server.json');
}

/**
 * The bearer token: from `tokenFile` (its first line) when given, else from the environment variable
 * ICE_SERVE_TOKEN, else `<state>/serve/token`, created (0600, 256 random bits) at first start. A token
 * file others can read is refused: the token is the whole of the API's authority.
 */
export function loadToken(stateDir: string, options: { readonly tokenFile?: string; readonly env?: NodeJS.ProcessEnv } = {}): { token: string; file: string | undefined } {
  const env = options.env ?? process.env;
  if (options.tokenFile !== undefined) return { token: readToken(options.tokenFile), file: options.tokenFile };
  const fromEnv = env['ICE_SERVE_TOKEN'];
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!TOKEN.test(fromEnv)) throw new ServeSetupError('ICE_SERVE_TOKEN must be 32 to 512 characters of letters, digits and ._~+/=-');
    return { token: fromEnv, file: undefined };
  }
  const file = join(serveDir(stateDir), 'token');
  mkdirSync(serveDir(stateDir), { recursive: true, mode: 0o700 });
  try {
    writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { flag: 'wx', mode: 0o600 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new ServeSetupError(`cannot create the token file ${file}: ${(error as Error).message}`);
  }
  return { token: readToken(file), file };
}

function readToken(file: string): string {
  let mode: number;
  let text: string;
  try {
    mode = statSync(file).mode;
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ServeSetupError(`cannot read the token file ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  if ((mode & 0o077) !== 0) throw new ServeSetupError(`the token file ${file} can be read by others (mode ${(mode & 0o777).toString(8)}): chmod 600 ${file}`);
  const token = text.split(/\r?\n/u)[0]!.trim();
  if (!TOKEN.test(token)) throw new ServeSetupError(`the token file ${file} must hold one token of 32 to 512 characters (letters, digits, ._~+/=-) on its first line`);
  return token;
}

/** The running server on this state, if any (its pid is alive). */
export function readServerInfo(stateDir: string): ServerInfo | undefined {
  let info: ServerInfo;
  try {
    info = JSON.parse(readFileSync(serverInfoPath(stateDir), 'utf8')) as ServerInfo;
  } catch {
    return undefined;
  }
  return typeof info.pid === 'number' && processAlive(info.pid) ? info : undefined;
}

/** Refuses to start a second server on one state directory. */
export function claimState(stateDir: string): void {
  const running = readServerInfo(stateDir);
  if (running !== undefined && running.pid !== process.pid) {
    throw new ServeSetupError(`another ice serve (pid ${running.pid}, ${running.url}) is serving ${stateDir}: stop it first, or pass another --state`);
  }
}

export function writeServerInfo(stateDir: string, info: ServerInfo): void {
  mkdirSync(serveDir(stateDir), { recursive: true, mode: 0o700 });
  const path = serverInfoPath(stateDir);
  writeFileSync(path, `${JSON.stringify(info)}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
}

export function removeServerInfo(stateDir: string): void {
  const current = (() => {
    try {
      return JSON.parse(readFileSync(serverInfoPath(stateDir), 'utf8')) as ServerInfo;
    } catch {
      return undefined;
    }
  })();
  if (current?.pid === process.pid) rmSync(serverInfoPath(stateDir), { force: true });
}
