/** `--max-component-bytes <n>`, shared by the commands that load a component (run, inspect, replay). */
import { DEFAULT_MAX_COMPONENT_BYTES } from '../component/source.js';
import { UsageError } from './args.js';

export const MAX_COMPONENT_BYTES_OPTION = { 'max-component-bytes': { type: 'string' } } as const;

/** The cap in bytes: the flag's value (a positive whole number), or the default of 64 MiB. */
export function maxComponentBytes(command: string, value: string | undefined): number {
  if (value === undefined) return DEFAULT_MAX_COMPONENT_BYTES;
  const bytes = /^[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new UsageError(`ice ${command}: --max-component-bytes takes a positive whole number of bytes (default ${DEFAULT_MAX_COMPONENT_BYTES}), got ${JSON.stringify(value)}`);
  }
  return bytes;
}
