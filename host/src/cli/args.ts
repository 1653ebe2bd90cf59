/** Argument handling for `ice` commands, with usage errors that say what to type. */

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * Runs a command's argument parse (node:util parseArgs, strict: unknown flags are errors) and turns
 * its failure into a UsageError that repeats the usage line.
 */
export function withUsage<T>(command: string, usage: string, parse: () => T): T {
  try {
    return parse();
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
