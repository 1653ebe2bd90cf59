/**
 * Sends ONE already-decided HTTP request (one hop: redirects are returned, never followed, so the
 * caller re-decides every hop) and enforces, at the socket, what the rules could only promise:
 *
 * - the address connected to is checked, not the name: a connect-time `lookup` hook resolves the
 *   host once, and every answer must pass `checkAddress` before any answer is connected to, so a
 *   name cannot be checked against one answer and connected to another (DNS rebinding), and one
 *   bad answer in a mixed set denies the set (happy-eyeballs may pick any of them). The socket's
 *   peer address is checked again on every request, which also covers reused keep-alive sockets;
 * - the request sent is the one decided on: built from the parts of the same `URL` object, with
 *   exactly the caller's headers in order, nothing re-parsed, no proxy (node:http never reads
 *   HTTP_PROXY), no Accept-Encoding, no decompression;
 * - one hop is bounded in time (connect, headers and body together) and in response size;
 * - every failure is a value, and no message carries a request header value (they may be secrets).
 */

import { lookup as dnsLookup } from 'node:dns/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import { isIP, type Socket } from 'node:net';
import { rootCertificates } from 'node:tls';
import { checkAddress, classify, parseAddress, unmap, type Address, type Cidr } from './address.js';
import type { Header } from './rules.js';

export type { Header } from './rules.js';

export interface OutboundRequest {
  /** Already validated: an uppercase token. */
  readonly method: string;
  /** The exact object that was decided on; dispatched from its parts, never re-parsed. */
  readonly url: URL;
  /** Final headers (injected secrets included), sent exactly and in order, plus Host and Content-Length. */
  readonly headers: readonly Header[];
  readonly body?: Uint8Array;
}

export interface HopLimits {
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
  /** Aborted when the run ends: the request is abandoned and its socket destroyed. */
  readonly signal?: AbortSignal;
}

export type HopResult =
  | { ok: true; status: number; headers: Header[]; body: Uint8Array; address: string }
  | { ok: false; kind: 'address'; message: string; address?: string }
  | { ok: false; kind: 'timeout' | 'too-large' | 'network'; message: string };

export interface EgressPoolOptions {
  /** Non-public address ranges this pool may connect to, for a given hostname (from the rules that match it). */
  readonly allowedFor: (hostname: string) => readonly Cidr[];
  /** Hostname → all its addresses. Default: dns.lookup(hostname, { all: true, verbatim: true }). */
  readonly resolve?: (hostname: string) => Promise<readonly string[]>;
  /** Extra CA certificates, trusted in addition to Node's bundled ones. */
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer>;
}

/** A connection refused by the address check; carried through Node's error path to `send`. */
class AddressDenied extends Error {
  readonly code = 'ICE_EGRESS_ADDRESS_DENIED';
  constructor(
    message: string,
    readonly address: string | undefined,
  ) {
    super(message);
  }
}

/** How long an idle keep-alive socket stays in the pool; a later hop past this reconnects (and re-resolves). */
const IDLE_SOCKET_MS = 15_000;
const MAX_MESSAGE = 400;
// Node adds `Transfer-Encoding: chunked` to a body-less request of any other method (see ClientRequest).
const NO_BODY_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);
const HOST_SET_HEADERS: ReadonlySet<string> = new Set(['host', 'content-length', 'transfer-encoding']);

function suggestedRange(address: Address): string {
  const target = unmap(address);
  // A local-use NAT64 address whose /96 reading is public is denied for another layout's reading,
  // which only the IPv6 address itself can name (see checkAddress).
  if (classify(target) === 'public') return `${address.text}/128`;
  return `${target.text}/${target.family === 4 ? 32 : 128}`;
}

function defaultResolve(hostname: string): Promise<readonly string[]> {
  return dnsLookup(hostname, { all: true, verbatim: true }).then((answers) => answers.map((a) => a.address));
}

/** The denial for an address, or undefined when it may be connected to. `resolvedFrom` names the host that resolved to it. */
function denyAddress(text: string, allowed: readonly Cidr[], resolvedFrom: string | undefined): AddressDenied | undefined {
  const address = parseAddress(text);
  const via = resolvedFrom === undefined ? '' : `${resolvedFrom} resolved to ${text}: `;
  if (!address) {
    // Zone-scoped (`fe80::1%eth0`) or garbage: nothing we can classify, so nothing we connect to.
    return new AddressDenied(`${via}egress to ${JSON.stringify(text)} is denied: it is not an address that can be checked`, text);
  }
  const check = checkAddress(address, allowed);
  if (check.ok) return undefined;
  const range = suggestedRange(address);
  const fix =
    resolvedFrom === undefined
      ? `To allow it, write a rule whose URL names this exact address, or add addresses: ["${range}"] to the rule.`
      : `To allow it, add addresses: ["${range}"] to the rule for ${resolvedFrom}.`;
  return new AddressDenied(`${via}${check.reason}. ${fix}`, address.text);
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address?: string | { address: string; family: number }[], family?: number) => void;

function errorMessage(err: unknown): { code: string | undefined; message: string } {
  if (err !== null && typeof err === 'object') {
    const code = (err as { code?: unknown }).code;
    const message = (err as { message?: unknown }).message;
    return { code: typeof code === 'string' ? code : undefined, message: typeof message === 'string' ? message : '' };
  }
  return { code: undefined, message: '' };
}

const DNS_CODES: ReadonlySet<string> = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NODATA', 'ENODATA', 'ESERVFAIL', 'ENOADDRESS']);

function isTlsError(code: string | undefined, message: string): boolean {
  if (code === undefined) return /certificate|ssl|tls/i.test(message);
  return (
    code.startsWith('ERR_TLS') ||
    code.startsWith('ERR_SSL') ||
    code.includes('CERT') ||
    code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' ||
    code === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' ||
    code === 'EPROTO'
  );
}

/**
 * A short message for a failed hop, built from the error's code and our own words. Only TLS
 * errors lend their text (which certificate check failed), since Node builds those from the
 * certificate, never from the request.
 */
function networkMessage(err: unknown, origin: string, hostname: string): string {
  const { code, message } = errorMessage(err);
  const tag = code === undefined ? '' : ` (${code})`;
  if (code !== undefined && DNS_CODES.has(code)) return `DNS lookup for ${hostname} failed${tag}`;
  if (isTlsError(code, message)) {
    const detail = message.split('\n', 1)[0]?.slice(0, 160) ?? '';
    return `TLS connection to ${origin} failed: ${detail}${tag}`;
  }
  switch (code) {
    case 'ECONNREFUSED':
      return `connection to ${origin} refused${tag}`;
    case 'ECONNRESET':
      return message === 'socket hang up'
        ? `${origin} closed the connection without a complete response${tag}`
        : `connection to ${origin} reset${tag}`;
    case 'EPIPE':
      return `${origin} closed the connection while the request was being sent${tag}`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return `${origin} is unreachable${tag}`;
    case 'ETIMEDOUT':
      return `connection to ${origin} timed out${tag}`;
    default:
      if (code?.startsWith('HPE_')) return `the response from ${origin} is not valid HTTP/1.1${tag}`;
      return `request to ${origin} failed${tag}`;
  }
}

/** Belt and braces: no message built here interpolates a header value, and none may ever carry one. */
function redact(message: string, headers: readonly Header[]): string {
  let out = message;
  for (const { value } of headers) {
    const v = value.trim();
    if (v.length >= 4) out = out.split(v).join('[redacted]');
  }
  return out.length > MAX_MESSAGE ? `${out.slice(0, MAX_MESSAGE - 1)}…` : out;
}

/**
 * One per (component, policy): its keep-alive sockets were opened under this pool's address rules
 * and must never carry another component's requests.
 */
export class EgressPool {
  readonly #allowedFor: (hostname: string) => readonly Cidr[];
  readonly #resolve: (hostname: string) => Promise<readonly string[]>;
  readonly #http: http.Agent;
  readonly #https: https.Agent;
  #closed = false;

  constructor(options: EgressPoolOptions) {
    this.#allowedFor = options.allowedFor;
    this.#resolve = options.resolve ?? defaultResolve;
    const lookup = this.#lookup.bind(this);
    // `lookup` and `ca` sit on the agents, whose options override the request's (Agent.addRequest),
    // so no request option can swap them out.
    this.#http = new http.Agent({ keepAlive: true, timeout: IDLE_SOCKET_MS, lookup } as http.AgentOptions);
    const extra = options.ca === undefined ? [] : Array.isArray(options.ca) ? options.ca : [options.ca];
    this.#https = new https.Agent({
      keepAlive: true,
      timeout: IDLE_SOCKET_MS,
      lookup,
      // Explicit, so NODE_TLS_REJECT_UNAUTHORIZED=0 in the host's environment cannot turn checks off.
      rejectUnauthorized: true,
      ...(extra.length > 0 ? { ca: [...rootCertificates, ...(extra as (string | Buffer)[])] } : {}),
    } as https.AgentOptions);
  }

  /**
   * The agents' resolver. Node skips it for IP-literal hosts (checked in `send`) and, with
   * autoSelectFamily (Node 20's default), asks for `all: true` and races the answers; it may
   * connect to any of them, so all must pass before any is handed back.
   */
  #lookup(hostname: string, options: unknown, callback?: LookupCallback): void {
    const cb = (typeof options === 'function' ? options : callback) as LookupCallback;
    const opts = (typeof options === 'object' && options !== null ? options : {}) as { all?: boolean; family?: number | string };
    const wanted = opts.family === 4 || opts.family === 'IPv4' ? 4 : opts.family === 6 || opts.family === 'IPv6' ? 6 : 0;
    const run = async (): Promise<{ address: string; family: number }[]> => {
      const answers = await this.#resolve(hostname);
      const allowed = this.#allowedFor(hostname);
      const out: { address: string; family: number }[] = [];
      for (const answer of answers) {
        const denied = denyAddress(answer, allowed, hostname);
        if (denied) throw denied;
        // Connect to the canonical form of what was checked, never to a spelling Node would re-read.
        const address = parseAddress(answer) as Address;
        if (wanted === 0 || address.family === wanted) out.push({ address: address.text, family: address.family });
      }
      if (out.length === 0) throw Object.assign(new Error(`no addresses for ${hostname}`), { code: 'ENOTFOUND' });
      return out;
    };
    run().then(
      (addresses) => {
        if (opts.all) cb(null, addresses);
        else cb(null, addresses[0]?.address, addresses[0]?.family);
      },
      (err: unknown) => cb(err instanceof Error ? (err as NodeJS.ErrnoException) : new Error('DNS lookup failed')),
    );
  }

  send(request: OutboundRequest, limits: HopLimits): Promise<HopResult> {
    return new Promise<HopResult>((resolve) => {
      try {
        this.#send(request, limits, resolve);
      } catch (err) {
        // Node throws synchronously on bad header names and values; its messages may quote the value.
        const { code } = errorMessage(err);
        resolve({ ok: false, kind: 'network', message: `the request could not be built${code ? ` (${code})` : ''}` });
      }
    });
  }

  #send(request: OutboundRequest, limits: HopLimits, resolve: (result: HopResult) => void): void {
    const { url, method, headers, body } = request;
    const fail = (kind: 'timeout' | 'too-large' | 'network', message: string): void =>
      resolve({ ok: false, kind, message: redact(message, headers) });
    if (this.#closed) return fail('network', 'the egress pool is closed');
    const timeoutMs = limits.timeoutMs;
    const maxBytes = limits.maxResponseBytes;
    if (!(Number.isFinite(timeoutMs) && timeoutMs > 0) || !(Number.isSafeInteger(maxBytes) && maxBytes >= 0)) {
      return fail('network', 'invalid limits: grants.http.timeoutMs must be positive and grants.http.maxResponseBytes a non-negative integer');
    }
    const secure = url.protocol === 'https:';
    if (!secure && url.protocol !== 'http:') return fail('network', `the scheme ${JSON.stringify(url.protocol)} is not supported`);
    for (const header of headers) {
      if (HOST_SET_HEADERS.has(header.name.toLowerCase())) {
        return fail('network', `header "${header.name}" is set by the host and cannot be sent by the caller`);
      }
    }

    const hostname = url.hostname;
    const origin = `${url.protocol}//${url.host}`;
    const allowed = (): readonly Cidr[] => this.#allowedFor(hostname);
    // An IP-literal host never reaches the lookup hook, so it is checked here, before any socket exists.
    const bare = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
    const literal = parseAddress(hostname);
    if (literal || isIP(bare) !== 0) {
      const denied = denyAddress(bare, allowed(), undefined);
      if (denied) return resolve({ ok: false, kind: 'address', message: redact(denied.message, headers), address: denied.address });
    }
    const connectHost = literal ? literal.text : bare;

    const raw: string[] = ['Host', url.host];
    for (const { name, value } of headers) raw.push(name, value);
    if (body !== undefined) raw.push('Content-Length', String(body.byteLength));
    // An RFC 9110 user agent sends Content-Length: 0 for an empty POST; Node would send chunked.
    else if (!NO_BODY_METHODS.has(method)) raw.push('Content-Length', '0');

    let settled = false;
    let phase: 'connecting' | 'waiting for the response headers' | 'reading the response body' = 'connecting';
    let remote: string | undefined;
    let req: http.ClientRequest | undefined;
    let timer: NodeJS.Timeout | undefined;
    const settle = (result: HopResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      limits.signal?.removeEventListener('abort', abandon);
      // Anything short of a complete response leaves the socket mid-exchange: it must not be reused.
      if (!result.ok) req?.destroy();
      resolve(result);
    };
    const settleFail = (kind: 'timeout' | 'too-large' | 'network', message: string): void =>
      settle({ ok: false, kind, message: redact(message, headers) });
    // The run this request is for has ended (its worker was stopped): nobody will read the answer.
    function abandon(): void {
      settleFail('network', `the run ended while ${phase} to ${origin}; the request was abandoned`);
    }

    /** The peer of a fresh or reused socket, checked before a byte of this request is written to it. */
    const checkPeer = (socket: Socket): void => {
      if (settled) return;
      const peer = socket.remoteAddress;
      if (peer === undefined) {
        socket.destroy();
        settleFail('network', `the connection to ${origin} closed before its address could be checked`);
        return;
      }
      const denied = denyAddress(peer, allowed(), literal ? undefined : hostname);
      if (denied) {
        settle({ ok: false, kind: 'address', message: redact(denied.message, headers), address: denied.address });
        socket.destroy();
        return;
      }
      remote = peer;
      phase = 'waiting for the response headers';
    };

    const options: https.RequestOptions = {
      agent: secure ? this.#https : this.#http,
      method,
      host: connectHost,
      port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
      path: url.pathname + url.search,
      headers: raw as unknown as http.OutgoingHttpHeaders,
      setHost: false,
      insecureHTTPParser: false,
    };
    // SNI carries a name, never an address; '' stops Node deriving one from the Host header.
    if (secure) options.servername = literal ? '' : hostname;
    req = (secure ? https : http).request(options);
    // Started only once the request exists: `request` throws synchronously on a bad header.
    if (limits.signal?.aborted) return abandon();
    limits.signal?.addEventListener('abort', abandon, { once: true });
    timer = setTimeout(() => {
      settleFail('timeout', `no complete response from ${origin} within grants.http.timeoutMs (${timeoutMs} ms), stopped while ${phase}`);
    }, timeoutMs);

    req.on('socket', (socket: Socket) => {
      // A reused keep-alive socket is already connected; a new one is checked the moment it connects,
      // ahead of the queued request bytes and the TLS ClientHello, which are also 'connect' listeners.
      if (socket.connecting) socket.prependOnceListener('connect', () => checkPeer(socket));
      else checkPeer(socket);
    });
    req.on('error', (err: unknown) => {
      if (err instanceof AddressDenied) {
        settle({ ok: false, kind: 'address', message: redact(err.message, headers), address: err.address });
      } else {
        settleFail('network', networkMessage(err, origin, hostname));
      }
    });
    req.on('upgrade', (_res, socket: Socket) => {
      socket.destroy();
      settleFail('network', `${origin} switched protocols, which egress does not support`);
    });
    req.on('response', (res: http.IncomingMessage) => {
      phase = 'reading the response body';
      const tooLarge = (seen: string): void =>
        settleFail(
          'too-large',
          `the response from ${origin} is larger than grants.http.maxResponseBytes (${maxBytes} bytes): ${seen}`,
        );
      const status = res.statusCode ?? 0;
      const hasBody = method !== 'HEAD' && status !== 204 && status !== 304;
      const declared = res.headers['content-length'];
      if (hasBody && declared !== undefined && Number(declared) > maxBytes) {
        tooLarge(`it declares Content-Length ${declared}`);
        return;
      }
      const chunks: Buffer[] = [];
      let total = 0;
      res.on('data', (chunk: Buffer) => {
        if (settled) return;
        total += chunk.length;
        if (total > maxBytes) {
          tooLarge(`more than ${maxBytes} bytes arrived`);
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        // A fresh buffer, not a Buffer that may be a slice of Node's shared pool.
        const out = new Uint8Array(total);
        let at = 0;
        for (const chunk of chunks) {
          out.set(chunk, at);
          at += chunk.length;
        }
        const responseHeaders: Header[] = [];
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
          responseHeaders.push({ name: res.rawHeaders[i] as string, value: res.rawHeaders[i + 1] as string });
        }
        settle({ ok: true, status, headers: responseHeaders, body: out, address: remote ?? res.socket?.remoteAddress ?? '' });
      });
      res.on('error', (err: unknown) => settleFail('network', networkMessage(err, origin, hostname)));
      res.on('close', () => {
        if (!res.complete) settleFail('network', `${origin} closed the connection before the response body was complete`);
      });
    });

    if (body !== undefined && body.byteLength > 0) {
      req.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    } else {
      req.end();
    }
  }

  /** Destroys both agents and every socket they hold, idle or busy. */
  close(): void {
    this.#closed = true;
    this.#http.destroy();
    this.#https.destroy();
  }
}
