/**
 * The filesystem checks preview2-shim does not make: a path must stay inside its mount (no absolute path,
 * no `..`, no symlink whose target leaves the mount's real directory), and a read-only mount refuses every
 * write, create, rename, delete and truncate with the WASI error code `read-only`. Each descriptor handed
 * to the guest is tied to its mount and its host path here. Mounts' host directories may overlap: a change
 * is checked against every mount, so a read-only directory stays read-only when it is also reachable inside
 * a read-write mount, and no mount's root directory can be removed or renamed away.
 */
import { realpathSync } from 'node:fs';
import { basename, dirname, join, sep } from 'node:path';
import type { WasiMount } from './policy.js';

export interface FsPlace {
  readonly mount: WasiMount;
  /** The mount's real host directory (symlinks resolved), resolved on first use (a replay never needs it). */
  readonly root: () => string;
  /** This descriptor's host path. */
  readonly host: string;
}

/** A mount of the run with its real root (shared by every descriptor of that mount). */
export interface MountRoot {
  readonly mount: WasiMount;
  readonly root: () => string;
}

export type FsVerdict = { readonly ok: true } | { readonly ok: false; readonly code: string; readonly reason: string };

/** Methods that change the filesystem. */
const MUTATING: ReadonlySet<string> = new Set([
  'setSize',
  'setTimes',
  'write',
  'createDirectoryAt',
  'setTimesAt',
  'linkAt',
  'removeDirectoryAt',
  'renameAt',
  'symlinkAt',
  'unlinkFileAt',
  'writeViaStream',
  'appendViaStream',
]);

/** For each method taking a path: the index of the path, and whether its last component is followed. */
const PATHS: Readonly<Record<string, readonly { index: number; follow: 'flags' | boolean }[]>> = {
  createDirectoryAt: [{ index: 0, follow: false }],
  statAt: [{ index: 1, follow: 'flags' }],
  setTimesAt: [{ index: 1, follow: 'flags' }],
  linkAt: [
    { index: 1, follow: 'flags' },
    { index: 3, follow: false },
  ],
  openAt: [{ index: 1, follow: 'flags' }],
  readlinkAt: [{ index: 0, follow: false }],
  removeDirectoryAt: [{ index: 0, follow: false }],
  renameAt: [
    { index: 0, follow: false },
    { index: 2, follow: false },
  ],
  symlinkAt: [{ index: 1, follow: false }],
  unlinkFileAt: [{ index: 0, follow: false }],
  metadataHashAt: [{ index: 1, follow: 'flags' }],
};

/** Methods whose path names an entry that goes away (or is replaced): a mount root must not be one. */
const REMOVING: ReadonlySet<string> = new Set(['removeDirectoryAt', 'renameAt', 'unlinkFileAt', 'linkAt', 'symlinkAt']);

/** For linkAt and renameAt: which argument is the second directory (its path is checked against it). */
const SECOND_DESCRIPTOR: Readonly<Record<string, number>> = { linkAt: 2, renameAt: 1 };

const refuse = (code: string, reason: string): FsVerdict => ({ ok: false, code, reason });

/** The mount's real directory, resolved once, when a check first needs it. */
export function rootOf(mount: WasiMount): () => string {
  let real: string | undefined;
  return () => (real ??= realpathSync(mount.host));
}

/** The real path `host` resolves to (the part that exists resolved; the rest appended). */
function realish(host: string, followLast: boolean): string {
  if (!followLast) return join(realish(dirname(host), true), basename(host));
  try {
    return realpathSync(host);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(host) === host) throw error;
    return join(realish(dirname(host), true), basename(host));
  }
}

function inside(root: string, real: string): boolean {
  return real === root || real.startsWith(root.endsWith(sep) ? root : root + sep);
}

function pathProblem(path: unknown): string | undefined {
  if (typeof path !== 'string') return 'the path is not a string';
  if (path.startsWith('/')) return `the absolute path ${JSON.stringify(path.slice(0, 200))} is not allowed; paths are relative to a directory the guest was given`;
  if (path.includes('\u0000')) return 'the path contains NUL';
  if (path.split('/').includes('..')) return `the path ${JSON.stringify(path.slice(0, 200))} contains "..", which could leave its mount`;
  return undefined;
}

/**
 * Checks a descriptor method before it runs. `places` finds the place of a descriptor argument (for
 * linkAt/renameAt). Never throws: a path that cannot be resolved is refused.
 */
export function checkFsCall(
  method: string,
  place: FsPlace | undefined,
  args: readonly unknown[],
  placeOf: (value: unknown) => FsPlace | undefined,
  mounts: readonly MountRoot[] = [],
): FsVerdict {
  if (!place) return refuse('access', 'this descriptor is not one ICE handed out');
  const readOnly = place.mount.mode === 'read-only';
  if (readOnly && MUTATING.has(method)) return refuse('read-only', `${place.mount.guest} is mounted read-only (grants.wasi.filesystem)`);
  let writes = MUTATING.has(method);
  if (method === 'openAt') {
    const open = (args[2] ?? {}) as Record<string, boolean>;
    const flags = (args[3] ?? {}) as Record<string, boolean>;
    writes = Boolean(open.create || open.truncate || open.exclusive || flags.write || flags.mutateDirectory);
    if (writes && readOnly) {
      return refuse('read-only', `${place.mount.guest} is mounted read-only (grants.wasi.filesystem): opening to create, truncate or write is refused`);
    }
  }
  // A change through this descriptor itself (write, set-size, …): refused where its file is under a read-only mount.
  if (writes && !PATHS[method]) {
    const under = readOnlyOver(mounts, place.host, true);
    if (under) return under;
  }
  if (method === 'symlinkAt') {
    const target = args[0];
    const problem = pathProblem(target);
    if (problem) return refuse('not-permitted', `symlink target: ${problem}`);
  }
  for (const { index, follow } of PATHS[method] ?? []) {
    const path = args[index];
    const problem = pathProblem(path);
    if (problem) return refuse('not-permitted', problem);
    const second = SECOND_DESCRIPTOR[method];
    const base = second !== undefined && index > second ? placeOf(args[second]) : place;
    if (!base) return refuse('access', 'the other directory is not one ICE handed out');
    if (base.mount !== place.mount) return refuse('cross-device', 'both paths must be in the same mount');
    const followLast = follow === 'flags' ? ((args[0] ?? {}) as { symlinkFollow?: boolean }).symlinkFollow === true : follow;
    let real: string;
    try {
      real = realish(join(base.host, path as string), followLast);
    } catch {
      return refuse('no-entry', 'the path cannot be resolved');
    }
    if (!inside(base.root(), real)) {
      return refuse('not-permitted', `the path ${JSON.stringify(String(path).slice(0, 200))} resolves outside ${base.mount.guest} (through a symlink)`);
    }
    const changes = writes && (method !== 'linkAt' || index === 3);
    if (changes) {
      const under = readOnlyOver(mounts, real, false);
      if (under) return under;
    }
    if (changes && REMOVING.has(method)) {
      const root = mounts.find((m) => safeRoot(m) === real);
      if (root) return refuse('not-permitted', `${root.mount.guest} is a mount root (grants.wasi.filesystem); it cannot be removed, renamed or replaced`);
    }
  }
  return { ok: true };
}

function safeRoot(m: MountRoot): string | undefined {
  try {
    return m.root();
  } catch {
    return undefined;
  }
}

/** A refusal when `host` lies under a read-only mount's real directory (another mount of the same tree included). */
function readOnlyOver(mounts: readonly MountRoot[], host: string, resolve: boolean): FsVerdict | undefined {
  let real = host;
  if (resolve) {
    try {
      real = realish(host, true);
    } catch {
      return refuse('no-entry', 'the path cannot be resolved');
    }
  }
  for (const m of mounts) {
    if (m.mount.mode !== 'read-only') continue;
    const root = safeRoot(m);
    if (root !== undefined && inside(root, real)) return refuse('read-only', `${m.mount.guest} is mounted read-only (grants.wasi.filesystem), and this path is inside its directory`);
  }
  return undefined;
}

/** The place of a descriptor `openAt` returns. */
export function childPlace(parent: FsPlace, path: string): FsPlace {
  return { mount: parent.mount, root: parent.root, host: join(parent.host, path) };
}
