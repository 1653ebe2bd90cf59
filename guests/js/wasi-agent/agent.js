// wasi-agent: a JavaScript agent (componentize-js) that uses WASI the way third-party agents do, and
// tries what its policy should refuse. The input names what to do; the result reports what happened,
// so the tests can assert every answer. WASI errors are reported as "err:<code>".
import { write as log } from 'ice:agent/log@0.1.0';
import { get as kvGet, set as kvSet } from 'ice:agent/kv@0.1.0';
import { getEnvironment, getArguments, initialCwd } from 'wasi:cli/environment@0.2.12';
import { exit } from 'wasi:cli/exit@0.2.12';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';
import { getRandomBytes } from 'wasi:random/random@0.2.12';
import { getInsecureRandomBytes } from 'wasi:random/insecure@0.2.12';
import { subscribeDuration } from 'wasi:clocks/monotonic-clock@0.2.12';
import { poll } from 'wasi:io/poll@0.2.12';
import { instanceNetwork } from 'wasi:sockets/instance-network@0.2.12';
import { createTcpSocket } from 'wasi:sockets/tcp-create-socket@0.2.12';
import { Fields, OutgoingRequest } from 'wasi:http/types@0.2.12';
import { handle } from 'wasi:http/outgoing-handler@0.2.12';

/** The number after the action name, as a u64. */
const arg = (input) => BigInt(input.split(' ')[1] ?? '0');

const text = (bytes) => new TextDecoder().decode(bytes);

function dir(guestPath) {
  const found = getDirectories().find(([, name]) => name === guestPath);
  if (!found) throw new Error(`no preopen ${guestPath}`);
  return found[0];
}

/** Runs `fn`, turning a thrown WASI error code into "err:<code>". */
function attempt(fn) {
  try {
    return fn();
  } catch (e) {
    const code = e && typeof e === 'object' && 'payload' in e ? e.payload : e;
    return `err:${typeof code === 'object' ? JSON.stringify(code) : String(code)}`;
  }
}

function readFile(root, path) {
  const file = root.openAt({ symlinkFollow: true }, path, {}, { read: true });
  const [bytes] = file.read(4096n, 0n);
  return text(bytes);
}

const actions = {
  env: () => JSON.stringify({ env: getEnvironment(), args: getArguments(), cwd: initialCwd() ?? null }),
  stdout: () => {
    console.log('hello on stdout');
    console.error('hello on stderr');
    return 'printed';
  },
  read: () => readFile(dir('/data'), 'hello.txt'),
  'list-dirs': () => getDirectories().map(([, name]) => name).join(','),
  'escape-dotdot': () => attempt(() => readFile(dir('/data'), '../secret.txt')),
  'escape-absolute': () => attempt(() => readFile(dir('/data'), '/etc/hostname')),
  'escape-symlink': () => attempt(() => readFile(dir('/data'), 'link-out')),
  'write-ro': () =>
    [
      attempt(() => dir('/data').openAt({ symlinkFollow: false }, 'new.txt', { create: true }, { write: true })),
      attempt(() => dir('/data').openAt({ symlinkFollow: false }, 'hello.txt', { truncate: true }, { write: true })),
      attempt(() => dir('/data').unlinkFileAt('hello.txt')),
      attempt(() => dir('/data').renameAt('hello.txt', dir('/data'), 'moved.txt')),
      attempt(() => dir('/data').createDirectoryAt('sub')),
      attempt(() => dir('/data').openAt({ symlinkFollow: false }, 'hello.txt', {}, { read: true }).writeViaStream(0n)),
    ].join(' '),
  'write-rw': () => {
    const scratch = dir('/scratch');
    const file = scratch.openAt({ symlinkFollow: false }, 'out.txt', { create: true, truncate: true }, { read: true, write: true });
    file.write(new TextEncoder().encode('written by the guest'), 0n);
    return readFile(scratch, 'out.txt');
  },
  'exit-ok': () => {
    exit({ tag: 'ok' });
    return 'not reached';
  },
  'exit-err': () => {
    exit({ tag: 'err' });
    return 'not reached';
  },
  sockets: () => attempt(() => createTcpSocket('ipv4')),
  'instance-network': () => attempt(() => instanceNetwork()),
  // An outgoing wasi:http request, made directly (what fetch() does underneath).
  http: () =>
    attempt(() => {
      const request = new OutgoingRequest(new Fields());
      request.setAuthority('127.0.0.1:9');
      handle(request, undefined);
      return 'sent';
    }),
  clock: () => `now=${Date.now() > 0}`,
  random: () => `random=${crypto.getRandomValues(new Uint8Array(4)).length}`,
  // Exact sizes from the input ("random-bytes 2000000000"): what a hostile guest asks the host to allocate.
  'random-bytes': (input) => `bytes=${getRandomBytes(arg(input)).length}`,
  'insecure-random-bytes': (input) => `bytes=${getInsecureRandomBytes(arg(input)).length}`,
  'read-len': (input) => attempt(() => `bytes=${dir('/data').openAt({ symlinkFollow: false }, 'hello.txt', {}, { read: true }).read(arg(input), 0n)[0].length}`),
  'stream-read-len': (input) =>
    attempt(() => `bytes=${dir('/data').openAt({ symlinkFollow: false }, 'hello.txt', {}, { read: true }).readViaStream(0n).blockingRead(arg(input)).length}`),
  'write-len': (input) =>
    attempt(() => {
      const file = dir('/scratch').openAt({ symlinkFollow: false }, 'big.bin', { create: true, truncate: true }, { write: true });
      return `written=${file.write(new Uint8Array(Number(arg(input))), 0n)}`;
    }),
  'stream-zeroes-len': (input) =>
    attempt(() => {
      const stream = dir('/scratch').openAt({ symlinkFollow: false }, 'zeroes.bin', { create: true, truncate: true }, { write: true }).writeViaStream(0n);
      return `permit=${stream.checkWrite()} ${stream.blockingWriteZeroesAndFlush(arg(input)) ?? 'written'}`;
    }),
  'path-len': (input) => attempt(() => dir('/scratch').openAt({ symlinkFollow: false }, 'a'.repeat(Number(arg(input))), {}, { read: true }) && 'opened'),
  // Sleeps on the monotonic clock for the input's milliseconds (through block, or through poll).
  'sleep-block': (input) => {
    subscribeDuration(arg(input) * 1_000_000n).block();
    return 'woke';
  },
  'sleep-poll': (input) => `ready=${poll([subscribeDuration(arg(input) * 1_000_000n)]).length}`,
  // A read-write mount with a read-only mount nested inside it: writes through the outer one, and
  // removing or renaming mount roots.
  'nested-write': () =>
    [
      attempt(() => dir('/outer').openAt({ symlinkFollow: false }, 'ro/x.txt', { create: true }, { write: true }) && 'created'),
      attempt(() => dir('/outer').unlinkFileAt('ro/keep.txt') ?? 'unlinked'),
      attempt(() => dir('/outer').renameAt('ro/keep.txt', dir('/outer'), 'moved.txt') ?? 'renamed'),
      attempt(() => dir('/outer').removeDirectoryAt('ro') ?? 'removed'),
    ].join(' '),
  'remove-root': () =>
    [
      attempt(() => dir('/scratch').removeDirectoryAt('.') ?? 'removed'),
      attempt(() => dir('/scratch').renameAt('.', dir('/scratch'), 'elsewhere') ?? 'renamed'),
      attempt(() => dir('/outer').renameAt('ro', dir('/outer'), 'gone') ?? 'renamed'),
    ].join(' '),
  ice: (input) => {
    log('info', `js agent: ${input}`);
    const count = Number(kvGet('count') ?? '0') + 1;
    kvSet('count', String(count));
    return `count=${count}`;
  },
};

export function run(input) {
  const action = actions[input.split(' ')[0]];
  if (!action) throw `unknown action: ${input}`;
  return action(input);
}
