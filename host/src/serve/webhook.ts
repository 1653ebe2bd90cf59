/**
 * Checks a webhook request before anything runs. Two schemes, named in the config's `on.verify`:
 *
 * - `hmac`: the sender signs `<timestamp>.<body>` with HMAC-SHA256 and the shared secret, and sends
 *   `X-Ice-Timestamp: <unix seconds>` and `X-Ice-Signature: sha256=<hex>`. A timestamp more than five
 *   minutes off is refused, and so is a signature already accepted within that window: a captured
 *   request cannot be replayed.
 * - `token`: the sender sends the secret itself as `X-Ice-Token` (for senders that cannot sign).
 *
 * Comparisons are constant-time. A missing secret refuses every request (and says which secret).
 */
import { createHmac, createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { SecretSource } from '../capabilities/secrets.js';

export type Verify = { readonly hmac: string } | { readonly token: string };

const TOLERANCE_S = 300;
/** Signatures remembered for replay refusal; past this many, the oldest are dropped (they are also past the window soonest). */
const MAX_REMEMBERED = 100_000;

export class WebhookVerifier {
  /** Accepted signatures → when they stop mattering (ms). */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly secrets: SecretSource,
    private readonly now: () => number = Date.now,
  ) {}

  /** undefined when the request passes; else why it is refused (safe to record and to return). */
  check(verify: Verify, headers: IncomingHttpHeaders, body: Buffer): string | undefined {
    const name = 'hmac' in verify ? verify.hmac : verify.token;
    const secret = this.secrets.get(name);
    if (secret === undefined || secret === '') return `the server has no secret ${name} to check webhooks with (set it with --secrets or in the environment)`;
    return 'hmac' in verify ? this.checkHmac(secret, headers, body) : checkToken(secret, headers);
  }

  private checkHmac(secret: string, headers: IncomingHttpHeaders, body: Buffer): string | undefined {
    const timestamp = one(headers['x-ice-timestamp']);
    const signature = one(headers['x-ice-signature']);
    if (timestamp === undefined || signature === undefined) return 'missing X-Ice-Timestamp or X-Ice-Signature header (sign "<timestamp>.<body>" with HMAC-SHA256)';
    if (!/^\d{1,12}$/u.test(timestamp)) return 'X-Ice-Timestamp is not a Unix time in seconds';
    const skew = Math.abs(this.now() / 1000 - Number(timestamp));
    if (skew > TOLERANCE_S) return `X-Ice-Timestamp is ${Math.round(skew)} s away from the server's clock (at most ${TOLERANCE_S} s)`;
    const match = /^sha256=([0-9a-f]{64})$/u.exec(signature);
    if (!match) return 'X-Ice-Signature is not sha256=<64 hex digits>';
    const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest();
    if (!timingSafeEqual(expected, Buffer.from(match[1]!, 'hex'))) return 'bad signature: X-Ice-Signature does not match the body and timestamp';
    this.forgetExpired();
    if (this.seen.has(match[1]!)) return 'this signed request was already accepted (a replay)';
    if (this.seen.size >= MAX_REMEMBERED) this.seen.delete(this.seen.keys().next().value!);
    this.seen.set(match[1]!, Number(timestamp) * 1000 + TOLERANCE_S * 1000);
    return undefined;
  }

  private forgetExpired(): void {
    const now = this.now();
    for (const [signature, until] of this.seen) {
      if (until >= now) break;
      this.seen.delete(signature);
    }
  }
}

function checkToken(secret: string, headers: IncomingHttpHeaders): string | undefined {
  const token = one(headers['x-ice-token']);
  if (token === undefined) return 'missing X-Ice-Token header';
  // Hashes first: timingSafeEqual needs equal lengths, and the length must not leak either.
  const a = createHash('sha256').update(token).digest();
  const b = createHash('sha256').update(secret).digest();
  return timingSafeEqual(a, b) ? undefined : 'bad token: X-Ice-Token does not match';
}

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? (value.length === 1 ? value[0] : undefined) : value;
}

/** The headers a sender puts on `body` (for clients and tests). */
export function signWebhook(secret: string, body: string | Buffer, timestamp: number = Math.floor(Date.now() / 1000)): Record<string, string> {
  const signature = createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
  return { 'X-Ice-Timestamp': String(timestamp), 'X-Ice-Signature': `sha256=${signature}` };
}
