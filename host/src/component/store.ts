/**
 * The components a host has loaded, kept by digest in `<state>/components/<sha256>.wasm`, so a run can
 * be replayed later from its run-start record alone. Written atomically; read back only if the bytes
 * still have the digest they are filed under.
 */
import { mkdirSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex } from '../core/digest.js';
import { LoadError } from './errors.js';
import { readComponentFile } from './source.js';

export class ComponentStore {
  constructor(readonly dir: string) {}

  put(bytes: Uint8Array, digest: string): void {
    const path = this.pathOf(digest);
    if (existsSync(path)) return;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const temporary = `${path}.${process.pid}.${Date.now()}.tmp`;
    writeFileSync(temporary, bytes, { mode: 0o600 });
    renameSync(temporary, path);
  }

  /**
   * The component with this digest, or undefined when it was never stored or no longer matches.
   * @throws LoadError (too-large) when the stored file is over `maxBytes` (it is not read past it)
   */
  get(digest: string, maxBytes: number): Uint8Array | undefined {
    try {
      const bytes = readComponentFile(this.pathOf(digest), maxBytes);
      return sha256Hex(bytes) === digest ? bytes : undefined;
    } catch (error) {
      if (error instanceof LoadError && error.code === 'too-large') throw error;
      return undefined;
    }
  }

  private pathOf(digest: string): string {
    if (!/^[0-9a-f]{64}$/.test(digest)) throw new Error(`not a sha256 digest: ${digest}`);
    return join(this.dir, `${digest}.wasm`);
  }
}
