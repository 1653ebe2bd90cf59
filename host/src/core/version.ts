/** The ICE version recorded in every run-start record, read from package.json. */
import { readFileSync } from 'node:fs';

function findVersion(): string {
  for (const up of ['../../../package.json', '../../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'ice-runtime' && pkg.version) return pkg.version;
    } catch {
      // try the next location (sources vs dist/)
    }
  }
  return '0.0.0-unknown';
}

export const ICE_VERSION = findVersion();
