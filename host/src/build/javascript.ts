/**
 * JavaScript guests, built with componentize-js (StarlingMonkey), the way third parties build WASI agents.
 * A guest directory holds `agent.js` and `world.wit`: a world in package ice:agent@0.1.0 that may import
 * ICE interfaces and WASI 0.2.12 interfaces and exports `run`. The WIT it is built against is assembled
 * in a temporary directory: ICE's wit/, the guest's world, and the WASI packages jco ships.
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { witDirectory } from '../core/world.js';
import { BuildError } from './errors.js';

const require = createRequire(import.meta.url);
const WASI_VERSION = '0.2.12';
const WASI_PACKAGES = ['cli', 'clocks', 'filesystem', 'http', 'io', 'random', 'sockets'];

/** jco's package directory (its package.json is not exported, so found from its entry point). */
function jcoRoot(): string {
  let at = dirname(require.resolve('@bytecodealliance/jco'));
  while (!existsSync(join(at, 'package.json'))) at = dirname(at);
  return at;
}

export function isJavaScriptGuest(dir: string): boolean {
  return existsSync(join(dir, 'agent.js')) && existsSync(join(dir, 'world.wit'));
}

type Preopens = { _getPreopens(): unknown[]; _setPreopens(p: Record<string, string>): void; _clearPreopens(): void };

export async function buildJavaScript(dir: string): Promise<{ component: Uint8Array; core: Uint8Array }> {
  const world = /^\s*world\s+([a-z][a-z0-9-]*)\s*\{/mu.exec(readFileSync(join(dir, 'world.wit'), 'utf8'))?.[1];
  if (!world) throw new BuildError(dir, 'world.wit declares no world; write `world <name> { … export run: func(input: string) -> result<string, string>; }`');
  const wit = mkdtempSync(join(tmpdir(), 'ice-js-wit-'));
  try {
    for (const file of readdirSync(witDirectory())) if (file.endsWith('.wit')) cpSync(join(witDirectory(), file), join(wit, file));
    writeFileSync(join(wit, 'zz-guest-world.wit'), readFileSync(join(dir, 'world.wit')));
    const builtin = join(jcoRoot(), 'lib', 'wit', 'builtin', WASI_VERSION);
    for (const name of WASI_PACKAGES) cpSync(join(builtin, `wasi-${name}`), join(wit, 'deps', name), { recursive: true });

    const { componentize } = (await import('@bytecodealliance/componentize-js')) as {
      componentize(options: { sourcePath: string; witPath: string; worldName: string }): Promise<{ component: Uint8Array }>;
    };
    // componentize-js reads its inputs through preview2-shim's process-wide filesystem, which has no
    // preopens: "/" is opened for the build only, then closed again.
    const fs = (await import('@bytecodealliance/preview2-shim/filesystem')) as unknown as Preopens;
    const before = fs._getPreopens().length;
    fs._setPreopens({ '/': '/' });
    try {
      const { component } = await componentize({ sourcePath: join(dir, 'agent.js'), witPath: wit, worldName: world });
      return { component, core: new Uint8Array(0) };
    } catch (error) {
      throw new BuildError(dir, `componentize-js failed: ${(error as Error).message.split('\n').slice(0, 6).join('\n')}`);
    } finally {
      if (before === 0) fs._clearPreopens();
    }
  } finally {
    rmSync(wit, { recursive: true, force: true });
  }
}
