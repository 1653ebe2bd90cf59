/**
 * The client side of `ice serve`'s HTTP API, for the commands that talk to a running server
 * (`ice agents`, `ice audit tail`, `ice events list --server`). It finds the server from the state dir
 * (`<state>/serve/server.json` and the token file it names) or from `--server <url> --token-file <file>`,
 * and turns every way of not reaching it — no server, a dead pid, a refused connection, a wrong token —
 * into a UsageError that names the server and the fix (exit 2). A refusal the server answered (4xx/5xx
 * with `{"error"}`) is a ServerError, for the command to map to its exit code.
 */
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import { pathProblem } from '../core/path-problem.js';
import { processAlive } from '../ledger/recover.js';
import { serverInfoPath } from '../serve/files.js';
import { UsageError } from './args.js';
import { checkStateDir } from './paths.js';

/** The options every server command takes (parseArgs shape). */
export const SERVER_OPTIONS = {
  state: { type: 'string' },
  server: { type: 'string' },
  'token-file': { type: 'string' },
} as const;

export interface ServerChoice {
  readonly state?: string | undefined;
  readonly server?: string | undefined;
  readonly 'token-file'?: string | undefined;
}

/** A server to talk to, and how it was found (for messages). */
export interface ServerTarget {
  /** Base URL without a trailing slash. */
  readonly url: string;
  readonly token: string;
  /** Where the token came from: a file path, or `ICE_SERVE_TOKEN`. */
  readonly tokenSource: string;
  /** `ice serve on <state> (pid N)`, or `ice serve` (--server): messages add ` at <url>`. */
  readonly where: string;
}

/** A refusal the server answered: its status and JSON body (`error` is its message). */
export class ServerError extends Error {
  override readonly name = 'ServerError';
  constructor(
    readonly status: number,
    message: string,
    readonly body: Readonly<Record<string, unknown>>,
  ) {
    super(message);
  }
}

/** What `<state>/serve/server.json` says, checked: a live server, or why there is none. */
export type ServerLookup =
  | { readonly kind: 'running'; readonly url: string; readonly pid: number; readonly tokenFile?: string }
  | { readonly kind: 'none'; readonly problem: string };

/** Reads `<state>/serve/server.json`; `none` says why no server is running there, in words for an error. */
export function lookupServer(stateDir: string): ServerLookup {
  const path = serverInfoPath(stateDir);
  const start = `start one with \`ice serve --config <ice.yaml> --state ${stateDir}\`, or pass --server <url> --token-file <file>`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none', problem: `no ice serve is running on ${stateDir} (no ${path}): ${start}` };
    return { kind: 'none', problem: `cannot read ${path}: ${pathProblem(error)}` };
  }
  let info: { url?: unknown; pid?: unknown; tokenFile?: unknown };
  try {
    info = JSON.parse(text) as typeof info;
  } catch {
    return { kind: 'none', problem: `${path} is not JSON: it is written by \`ice serve\`; if no server is running, delete it and ${start}` };
  }
  if (typeof info !== 'object' || info === null || typeof info.url !== 'string' || typeof info.pid !== 'number' || !Number.isSafeInteger(info.pid) || info.pid <= 0) {
    return { kind: 'none', problem: `${path} does not name a server's url and pid: it is written by \`ice serve\`; if no server is running, delete it and ${start}` };
  }
  if (!processAlive(info.pid)) {
    return { kind: 'none', problem: `no ice serve is running on ${stateDir} (server.json names pid ${info.pid}, which has exited): ${start}` };
  }
  return { kind: 'running', url: info.url, pid: info.pid, ...(typeof info.tokenFile === 'string' ? { tokenFile: info.tokenFile } : {}) };
}

/**
 * The server a command should talk to: `--server <url>` with `--token-file <file>` (or ICE_SERVE_TOKEN),
 * or the one running on `--state` (default ./.ice), with the token file its server.json names unless
 * `--token-file` overrides it.
 */
export function findServer(command: string, choice: ServerChoice, env: NodeJS.ProcessEnv = process.env): ServerTarget {
  if (choice.server !== undefined && choice.state !== undefined) {
    throw new UsageError(`ice ${command}: give --state <dir> (the server running there) or --server <url>, not both`);
  }
  if (choice.server !== undefined) {
    const url = serverUrl(command, choice.server);
    return { url, ...token(command, choice['token-file'], undefined, env, `ice serve at ${url}`), where: 'ice serve' };
  }
  const stateDir = checkStateDir(command, choice.state, false);
  const found = lookupServer(stateDir);
  if (found.kind === 'none') throw new UsageError(`ice ${command}: ${found.problem}`);
  const where = `ice serve on ${stateDir} (pid ${found.pid})`;
  return { url: serverUrl(command, found.url, `${serverInfoPath(stateDir)} names`), ...token(command, choice['token-file'], found.tokenFile, env, where), where };
}

/** `--by`'s default: the OS user running the command. */
export function defaultOperator(): string {
  try {
    const name = userInfo().username;
    if (name) return name;
  } catch {
    // No passwd entry (a container's arbitrary uid): fall through.
  }
  return process.env['USER'] || 'operator';
}

function serverUrl(command: string, text: string, what = '--server'): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`ice ${command}: ${what} ${JSON.stringify(text)}, which is not a URL: pass the address \`ice serve\` printed, e.g. --server http://127.0.0.1:7700`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`ice ${command}: ${what} ${JSON.stringify(text)}: expected an http:// or https:// URL, e.g. --server http://127.0.0.1:7700`);
  }
  return url.href.replace(/\/+$/u, '');
}

function token(command: string, given: string | undefined, named: string | undefined, env: NodeJS.ProcessEnv, where: string): { token: string; tokenSource: string } {
  const file = given ?? named;
  if (file !== undefined) return { token: readTokenFile(command, resolve(file), given !== undefined ? '--token-file' : 'the token file'), tokenSource: resolve(file) };
  const fromEnv = env['ICE_SERVE_TOKEN'];
  if (fromEnv !== undefined && fromEnv.trim() !== '') return { token: fromEnv.trim(), tokenSource: 'ICE_SERVE_TOKEN' };
  throw new UsageError(
    `ice ${command}: no token for ${where}: pass --token-file <file> (the server's <state>/serve/token, or the file its --token-file names), or set ICE_SERVE_TOKEN`,
  );
}

function readTokenFile(command: string, path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`ice ${command}: cannot read ${what} ${path}: ${pathProblem(error)}; pass the server's token file with --token-file <file>`);
  }
  const first = text.split(/\r?\n/u)[0]!.trim();
  if (first === '') throw new UsageError(`ice ${command}: ${what} ${path} is empty: its first line must be the server's bearer token`);
  return first;
}

export interface RequestOptions {
  readonly body?: unknown;
  /** Raw bytes sent as they are (an upgrade's component), with this content type. */
  readonly bytes?: { readonly data: Uint8Array; readonly type: string };
  readonly signal?: AbortSignal;
}

/** Requests to one server; each answer's JSON, or a thrown UsageError / ServerError. */
export class ServerClient {
  constructor(
    readonly command: string,
    readonly target: ServerTarget,
  ) {}

  get<T>(path: string, options: Omit<RequestOptions, 'body' | 'bytes'> = {}): Promise<T> {
    return this.request<T>('GET', path, options);
  }

  post<T>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.request<T>('POST', path, options);
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const { url, token } = this.target;
    const headers: Record<string, string> = { Authorization: `Bearer ${token}`, Accept: 'application/json' };
    let body: string | Uint8Array<ArrayBuffer> | undefined;
    if (options.bytes !== undefined) {
      headers['Content-Type'] = options.bytes.type;
      // A copy on a plain ArrayBuffer: what fetch's BodyInit takes (a Buffer may sit on a shared pool).
      body = new Uint8Array(options.bytes.data);
    } else if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    let response: Response;
    try {
      response = await fetch(`${url}${path}`, { method, headers, ...(body !== undefined ? { body } : {}), ...(options.signal ? { signal: options.signal } : {}) });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      throw new UsageError(`ice ${this.command}: cannot reach ${this.target.where} at ${url}: ${networkProblem(error)}`);
    }
    const text = await response.text().catch((error: unknown) => {
      if (options.signal?.aborted) throw error;
      throw new UsageError(`ice ${this.command}: ${this.target.where} at ${url} stopped answering mid-response (${networkProblem(error)}): try again`);
    });
    let parsed: unknown;
    try {
      parsed = text === '' ? {} : JSON.parse(text);
    } catch {
      throw new UsageError(`ice ${this.command}: ${url}${path} answered ${response.status} with something that is not JSON: is ${url} an ice serve?`);
    }
    const json = (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? parsed : {}) as Record<string, unknown>;
    if (response.ok) return json as T;
    const message = typeof json['error'] === 'string' ? json['error'] : `${response.status} ${response.statusText}`;
    if (response.status === 401) {
      throw new UsageError(
        `ice ${this.command}: ${this.target.where} at ${url} refused the token from ${this.target.tokenSource} (401: ${message}); ` +
          "pass that server's token: its <state>/serve/token, or the file its --token-file names",
      );
    }
    throw new ServerError(response.status, message, json);
  }
}

/** Why a fetch failed, from undici's cause codes, in words with the likely fix. */
function networkProblem(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  switch (cause?.code) {
    case 'ECONNREFUSED':
      return 'connection refused: is the server running, and is this its address? (`ice serve` prints it, and writes it to <state>/serve/server.json)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve: check the URL';
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'the connection timed out: check the address, and that no firewall is in the way';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'the connection was closed before an answer: the server may have stopped; try again';
    case 'UND_ERR_HEADERS_TIMEOUT':
      return 'no answer within 5 minutes (what was asked may still be going on: `ice audit list` shows the runs)';
    default:
      return cause?.message ?? (error instanceof Error ? error.message : String(error));
  }
}
