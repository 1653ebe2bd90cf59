/**
 * Secrets: values only the host holds. A policy names a secret (`inject: { secret: GITHUB_TOKEN }`); the
 * host finds its value in its secrets file (`ice run --secrets <file>`, or `secrets` in the library) or
 * else in its environment. Values never go to a worker, a guest, the ledger or a log: only the host
 * thread's egress reads them, after the decision, to build the outgoing header.
 */
import { pathProblem } from '../core/path-problem.js';
import { readFileSync, statSync } from 'node:fs';
import { parse } from 'yaml';

/** Secret names are environment variable names: they are looked up as such. */
export const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/u;

export class SecretsError extends Error {
  override readonly name = 'SecretsError';
}

export interface SecretSource {
  /** The secret's value, or undefined when the host has none by that name. */
  get(name: string): string | undefined;
  /** Where a missing secret should come from, for messages. */
  readonly describe: string;
}

/** The host's secrets: `values` first (a secrets file), then the environment. */
export function secretSource(values: Readonly<Record<string, string>> = {}, env: NodeJS.ProcessEnv = process.env, file?: string): SecretSource {
  const own = new Map(Object.entries(values));
  return {
    get: (name) => own.get(name) ?? (Object.hasOwn(env, name) ? env[name] : undefined),
    describe: file ? `the secrets file ${file} or the environment` : 'the environment',
  };
}

const MAX_SECRETS_FILE_BYTES = 1024 * 1024;

/**
 * Reads a secrets file: a YAML (or JSON) mapping of secret names to string values. Refused when other
 * users may read it (like ssh with private keys), so a secret is not exposed by the file that holds it.
 */
export function loadSecretsFile(path: string): Record<string, string> {
  let text: string;
  try {
    const stat = statSync(path);
    if (!stat.isFile()) throw new SecretsError(`secrets file ${path} is not a regular file`);
    if (process.platform !== 'win32' && (stat.mode & 0o077) !== 0) {
      throw new SecretsError(`secrets file ${path} can be read by other users (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 ${path}`);
    }
    if (stat.size > MAX_SECRETS_FILE_BYTES) throw new SecretsError(`secrets file ${path} is over ${MAX_SECRETS_FILE_BYTES} bytes`);
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if (error instanceof SecretsError) throw error;
    throw new SecretsError(`secrets file ${path} could not be read: ${pathProblem(error)}`);
  }
  let data: unknown;
  try {
    data = parse(text, { maxAliasCount: 0 });
  } catch {
    // The parser's message may quote the file's text, i.e. a secret: say where, not what.
    throw new SecretsError(`secrets file ${path} is not valid YAML or JSON; write one "NAME: value" per line`);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new SecretsError(`secrets file ${path} must be a mapping of names to values, like "GITHUB_TOKEN: ghp_…"`);
  }
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(data as Record<string, unknown>)) {
    if (!SECRET_NAME.test(name)) throw new SecretsError(`secrets file ${path}: ${JSON.stringify(name.slice(0, 40))} is not a secret name (letters, digits, _)`);
    if (typeof value !== 'string') throw new SecretsError(`secrets file ${path}: the value of ${name} must be a string (quote it)`);
    if (/[\r\n\0]/u.test(value)) throw new SecretsError(`secrets file ${path}: the value of ${name} contains CR, LF or NUL, which cannot go in a header`);
    out[name] = value;
  }
  return out;
}
