/** Placeholder until implemented. */
import { UsageError } from './args.js';
import type { Io } from './io.js';

export async function replayCommand(_argv: string[], _io: Io): Promise<number> {
  throw new UsageError('ice replay: not implemented yet');
}
