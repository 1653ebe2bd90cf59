/** Placeholder until implemented. */
import { UsageError } from './args.js';
import type { Io } from './io.js';

export async function stateCommand(_argv: string[], _io: Io): Promise<number> {
  throw new UsageError('ice state: not implemented yet');
}
