/**
 * Model providers, configured by the host (never by a guest or a policy): the built-in deterministic
 * `local` provider (models named `local/<anything>`, for examples, tests and offline use) and one
 * OpenAI-compatible endpoint (base URL, key from a host secret) for every other model name.
 * Usage is taken from the provider's answer; an answer without usage is refused, since the run's token
 * budget depends on it.
 */
import { Redactor } from '../http/redact.js';
import type { SecretSource } from '../secrets.js';
import type { WireStep } from '../steps.js';
import type { ModelConfig, OpenAiCompatibleConfig } from './config.js';

/** What crosses to the host thread for a `model.complete`. */
export interface CompletionWire {
  readonly model: string;
  readonly messages: readonly { readonly role: string; readonly content: string }[];
  readonly maxTokens: number;
}

export interface CompletionReply {
  readonly text: string;
  readonly usage: { readonly inputTokens: number; readonly outputTokens: number };
}

export type { ModelConfig, OpenAiCompatibleConfig } from './config.js';

const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

/** Roughly a token per 4 UTF-8 bytes, at least one per piece of text: what `local` counts. */
function tokens(text: string): number {
  return Math.max(1, Math.ceil(Buffer.byteLength(text, 'utf8') / 4));
}

/**
 * `local/<name>`: answers `[<name>] <last message>` cut to max-tokens × 4 bytes (on a character
 * boundary); input tokens are the messages' tokens plus one per message. Same request, same answer.
 */
export function completeLocally(request: CompletionWire): CompletionReply {
  const name = request.model.slice('local/'.length);
  const last = request.messages.at(-1)?.content ?? '';
  let text = `[${name}] ${last}`;
  const max = request.maxTokens * 4;
  if (Buffer.byteLength(text, 'utf8') > max) {
    const bytes = Buffer.from(text, 'utf8').subarray(0, max);
    // Drop a cut multi-byte character rather than produce invalid UTF-8.
    text = new TextDecoder('utf-8', { fatal: false }).decode(bytes).replace(/\uFFFD$/u, '');
  }
  const input = request.messages.reduce((n, m) => n + tokens(m.content) + 1, 0);
  return { text, usage: { inputTokens: input, outputTokens: tokens(text) } };
}

export async function completeWith(config: ModelConfig, secrets: SecretSource, request: CompletionWire): Promise<WireStep<CompletionReply>> {
  if (request.model.startsWith('local/')) return { ok: completeLocally(request) };
  const openai = config.openai;
  if (!openai) {
    return { failed: `model.complete: no provider for model "${request.model}" is configured on this host (models other than local/* need an OpenAI-compatible endpoint: --model-base-url)` };
  }
  return completeOpenAi(openai, secrets, request);
}

async function completeOpenAi(config: OpenAiCompatibleConfig, secrets: SecretSource, request: CompletionWire): Promise<WireStep<CompletionReply>> {
  const secretName = config.apiKeySecret ?? 'OPENAI_API_KEY';
  const key = secrets.get(secretName);
  const url = `${config.baseUrl.replace(/\/+$/u, '')}/chat/completions`;
  const timeoutMs = config.timeoutMs ?? 60_000;
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify({ model: request.model, messages: request.messages, max_tokens: request.maxTokens }),
      redirect: 'error',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    const name = (error as Error).name;
    if (name === 'TimeoutError') return { failed: `model.complete: the provider did not answer within ${timeoutMs} ms` };
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    return { failed: `model.complete: the provider could not be reached${cause ? ` (${cause})` : ''}` };
  }
  const raw = await readLimited(response);
  // Even a provider that echoes the request must not hand the key to the guest, in any of its forms.
  // fetch has already undone any Content-Encoding. The parsed text is redacted again below: JSON
  // escapes the raw search cannot see (`\u0073k-…`) are plain characters after JSON.parse.
  const redactor = new Redactor(key ? [{ name: secretName, value: key, sent: `Bearer ${key}` }] : []);
  const text = raw === undefined ? undefined : redactor.text(raw, '');
  if (text === undefined) return { failed: `model.complete: the provider's answer is over ${MAX_ANSWER_BYTES} bytes` };
  if (!response.ok) return { failed: `model.complete: the provider answered HTTP ${response.status}${redactor.text(providerMessage(text), '')}` };
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { failed: 'model.complete: the provider answered with something other than JSON' };
  }
  const answer = body as { choices?: { message?: { content?: unknown } }[]; usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } };
  const content = answer.choices?.[0]?.message?.content;
  const input = answer.usage?.prompt_tokens;
  const output = answer.usage?.completion_tokens;
  if (typeof content !== 'string') return { failed: 'model.complete: the provider\'s answer has no choices[0].message.content' };
  if (!isCount(input) || !isCount(output)) return { failed: 'model.complete: the provider\'s answer has no usage (prompt_tokens, completion_tokens); without it the token budget cannot be kept' };
  const said = redactor.text(content, '');
  if (said === '' && content !== '') return { failed: 'model.complete: the provider\'s answer repeats the API key in a form the host could not replace; it was not passed on' };
  return { ok: { text: said, usage: { inputTokens: input, outputTokens: output } } };
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= 0xffff_ffff;
}

/** The provider's own error message, shortened (the caller redacts it: a provider may quote the key). */
function providerMessage(text: string): string {
  try {
    const message = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message;
    if (typeof message === 'string') return `: ${message.slice(0, 200)}`;
  } catch {
    // not JSON: no message
  }
  return '';
}

async function readLimited(response: Response): Promise<string | undefined> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_ANSWER_BYTES) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
