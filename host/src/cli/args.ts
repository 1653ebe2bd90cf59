/** Argument parsing for `ice` (node:util parseArgs), with usage errors that say what to type. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * Parses a command's arguments strictly (unknown flags are errors); a parse failure becomes a
 * UsageError that repeats the usage line.
 */
export function parse<T extends ParseArgsConfig['options']>(command: string, argv: string[], options: T, usage: string) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true } as const);
  } catch (error) {
    const message = error instanceof Error ? error.message.replace(/\. To specify a positional.*$/s, '') : String(error);
    throw new UsageError(`ice ${command}: ${message}\nusage: ${usage}`);
  }
}

export function onePositional(command: string, positionals: string[], what: string, usage: string): string {
  if (positionals.length !== 1) {
    const problem = positionals.length === 0 ? `missing ${what}` : `expected one ${what}, got ${positionals.length}: ${positionals.join(' ')}`;
    throw new UsageError(`ice ${command}: ${problem}\nusage: ${usage}`);
  }
  return positionals[0]!;
}
