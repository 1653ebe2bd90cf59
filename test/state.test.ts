/**
 * The kv table as a view of the ledger (`ice state rebuild|verify`) and the ledger as an event store
 * (`ice events list`), after real runs of real guests. Runs go through the library host (in-process:
 * one compile per component, not one process per run); the commands run as the real CLI.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RunResult } from '../host/src/index.js';
import { openStateDb } from '../host/src/storage/db.js';
import { foldKv } from '../host/src/views/kv-fold.js';
import { freshHost, ice, tempDir, writePolicy } from './helpers.js';
import { POLICIES } from './fixtures/policies.js';
import { guestWasm } from './paths.js';

const COUNTER_POLICY = POLICIES.counterWithHistory();
// A second namespace; its history writes are denied, so they are not events.
const OTHER_POLICY = writePolicy(`version: 1
component: other
grants:
  log: deny
  kv: { read: ["count", "history/*"], write: ["count"] }
`);
const DIGEST_POLICY = writePolicy(`version: 1
component: counter
audit: { capture: digest }
grants:
  log: deny
  kv: { read: ["count", "history/*"], write: ["count", "history/*"] }
`);
const EMITTER_POLICY = writePolicy(`version: 1
component: emitter
grants:
  log: deny
  events: { kinds: ["counter.*"] }
`);

const DIGEST_EMITTER_POLICY = writePolicy(`version: 1
component: hushed
audit: { capture: digest }
grants:
  log: deny
  events: { kinds: ["*"] }
`);

type Row = { namespace: string; key: string; value: string };

/**
 * Runs each [guest, policy, input] in order on one host, then closes it so the CLI has the file to
 * itself. Every run must end ok unless `outcome` says otherwise.
 */
async function runAll(
  stateDir: string,
  runs: ReadonlyArray<readonly [string, string, string]>,
  outcome: RunResult['outcome'] = 'ok',
): Promise<RunResult[]> {
  const { host } = await freshHost(stateDir, { execution: 'in-process' });
  const results: RunResult[] = [];
  try {
    for (const [guest, policy, input] of runs) {
      const result = await (await host.load(guestWasm(guest), policy)).run(input);
      expect(result.outcome, `${guest} ${input}: ${result.ok ? result.output : result.error}`).toBe(outcome);
      results.push(result);
    }
  } finally {
    host.close();
  }
  return results;
}

/** The kv table, straight from SQLite. */
function kvRows(stateDir: string): Row[] {
  const db = new Database(join(stateDir, 'ice.db'));
  try {
    return db.prepare<[], Row>('SELECT namespace, key, value FROM kv ORDER BY namespace, key').all();
  } finally {
    db.close();
  }
}

/** Edits the kv table behind ICE's back. */
function sql(stateDir: string, text: string): void {
  const db = new Database(join(stateDir, 'ice.db'));
  try {
    db.exec(text);
  } finally {
    db.close();
  }
}

describe('ice state', () => {
  const stateDir = tempDir();
  // a, b: count 1, 2 with history/1, history/2; reset deletes count; c: count=1 again, history/1
  // overwritten. `limited` runs out of fuel after its writes: a run ended by a limit keeps them.
  const expected: Row[] = [
    { namespace: 'counter', key: 'count', value: '1' },
    { namespace: 'counter', key: 'history/1', value: 'c' },
    { namespace: 'counter', key: 'history/2', value: 'b' },
    { namespace: 'limited', key: 'count', value: '1' },
    { namespace: 'limited', key: 'history/1', value: 'z' },
    { namespace: 'other', key: 'count', value: '1' },
  ];

  beforeAll(async () => {
    const [first] = await runAll(stateDir, [
      ['counter', COUNTER_POLICY, 'a'],
      ['counter', COUNTER_POLICY, 'b'],
      ['counter', COUNTER_POLICY, 'reset'],
      ['counter', OTHER_POLICY, 'x'],
      ['counter', COUNTER_POLICY, 'c'],
    ]);
    // One unit less than a first run needs: the fuel runs out after the last kv.set, building the output.
    const fuel = (first?.fuel ?? 0) - 1;
    const limited = writePolicy(`version: 1
component: limited
limits: { fuel: ${fuel} }
grants:
  log: deny
  kv: { read: ["count", "history/*"], write: ["count", "history/*"] }
`);
    const [cut] = await runAll(stateDir, [['counter', limited, 'z']], 'limit');
    expect(cut?.counts.allowed).toBe(3);
  });

  it('folds the granted kv writes of the ledger into exactly the kv table', () => {
    expect(kvRows(stateDir)).toEqual(expected);
    const state = openStateDb(stateDir);
    try {
      const fold = foldKv(state);
      const rows = [...fold].flatMap(([namespace, entries]) => [...entries].map(([key, value]) => ({ namespace, key, value })));
      expect(rows.sort((a, b) => `${a.namespace}/${a.key}`.localeCompare(`${b.namespace}/${b.key}`))).toEqual(expected);
      expect(foldKv(state, 'other')).toEqual(new Map([['other', new Map([['count', '1']])]]));
    } finally {
      state.close();
    }
  });

  it('rebuilds a dropped kv table to the same rows, and verify agrees', () => {
    sql(stateDir, 'DELETE FROM kv');
    expect(kvRows(stateDir)).toEqual([]);
    const rebuilt = ice(['state', 'rebuild', '--state', stateDir]);
    // 7 writes of counter (2 + 2 + 1 delete + 2), 2 of limited, 1 of other (its history write was denied).
    expect(rebuilt).toEqual({
      code: 0,
      stdout: 'rebuilt kv of 3 components from 10 events: counter (3 keys), limited (2 keys), other (1 key)\n',
      stderr: '',
    });
    expect(kvRows(stateDir)).toEqual(expected);
    expect(ice(['state', 'verify', '--state', stateDir])).toEqual({
      code: 0,
      stdout: 'ok: kv view equals the fold of 10 events (3 components, 6 keys)\n',
      stderr: '',
    });
  });

  it('verify lists each difference of a tampered view and exits 1', () => {
    sql(
      stateDir,
      `UPDATE kv SET value = '5' WHERE namespace = 'counter' AND key = 'count';
       INSERT INTO kv (namespace, key, value) VALUES ('counter', 'zzz', '1');
       DELETE FROM kv WHERE namespace = 'counter' AND key = 'history/2';`,
    );
    const out = ice(['state', 'verify', '--state', stateDir]);
    expect(out.code).toBe(1);
    expect(out.stdout.split('\n')).toEqual([
      'counter: "count" is "5" in the view but "1" in the ledger',
      'counter: "history/2" is "b" in the ledger but missing from the view',
      'counter: "zzz" is "1" in the view but not in the ledger',
      'the kv view differs from the fold of 10 events in 3 keys: check the ledger with `ice audit verify --all`, then `ice state rebuild` restores the view from it',
      '',
    ]);
  });

  it('--component scopes verify and rebuild to one namespace', () => {
    sql(stateDir, "UPDATE kv SET value = '7' WHERE namespace = 'other' AND key = 'count'");
    expect(ice(['state', 'verify', '--component', 'other', '--state', stateDir]).stdout).toBe(
      'other: "count" is "7" in the view but "1" in the ledger\n' +
        'the kv view differs from the fold of 1 event in 1 key: check the ledger with `ice audit verify --all`, then `ice state rebuild` restores the view from it\n',
    );
    expect(ice(['state', 'rebuild', '--component', 'other', '--state', stateDir]).stdout).toBe('rebuilt kv of 1 component from 1 event: other (1 key)\n');
    expect(ice(['state', 'verify', '--component', 'other', '--state', stateDir])).toMatchObject({
      code: 0,
      stdout: 'ok: kv view equals the fold of 1 event (1 component, 1 key)\n',
    });
    // counter was left as tampered.
    expect(ice(['state', 'verify', '--component', 'counter', '--state', stateDir]).code).toBe(1);
    expect(ice(['state', 'rebuild', '--component', 'counter', '--state', stateDir]).stdout).toBe(
      'rebuilt kv of 1 component from 7 events: counter (3 keys)\n',
    );
    expect(kvRows(stateDir)).toEqual(expected);

    const unknown = ice(['state', 'verify', '--component', 'countr', '--state', stateDir]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no component "countr" in the ledger or the kv view');
    expect(unknown.stderr).toContain('components: counter, limited, other');
  });

  it('usage errors exit 2: a missing state dir, an unknown subcommand or flag', () => {
    const missing = join(tempDir(), 'nothing-here');
    const out = ice(['state', 'verify', '--state', missing]);
    expect(out).toMatchObject({ code: 2, stdout: '' });
    expect(out.stderr).toContain(`no ICE state in ${missing} (no ice.db): run a component first, or pass --state <dir>`);
    expect(ice(['state', 'check', '--state', stateDir])).toMatchObject({ code: 2 });
    expect(ice(['state', 'rebuild', '--force', '--state', stateDir]).stderr).toContain('usage: ice state rebuild');
  });
});

describe('ice state under digest capture', () => {
  it('rebuild refuses, naming the run, seq and key, and changes nothing; verify compares digests', async () => {
    const stateDir = tempDir();
    const [{ runId: first }] = (await runAll(stateDir, [
      ['counter', DIGEST_POLICY, 'a'],
      ['counter', DIGEST_POLICY, 'b'],
    ])) as [RunResult, RunResult];
    const before = kvRows(stateDir);
    expect(before).toHaveLength(3);

    const refused = ice(['state', 'rebuild', '--state', stateDir]);
    expect(refused.code).toBe(2);
    // The earliest write the fold cannot reproduce (count was last set by the second run). Its key was
    // recorded as a digest too: the name comes from the view row with that hash.
    expect(refused.stderr).toBe(
      `ice state rebuild: cannot rebuild the kv of component "counter": run ${first} seq 3 set "history/1", but the ledger holds ` +
        "only the sha256 of its key and value because the component's policy uses digest capture (audit.capture: digest); " +
        '2 more keys are like it. Nothing was changed. To rebuild, set audit.capture: full in the component\'s policy ' +
        '(a key is rebuildable again once a run writes it), or rebuild other components with --component <name>\n',
    );
    expect(kvRows(stateDir)).toEqual(before);

    expect(ice(['state', 'verify', '--state', stateDir])).toMatchObject({
      code: 0,
      stdout: 'ok: kv view equals the fold of 4 events (1 component, 3 keys; 3 compared by sha256, as recorded under digest capture)\n',
    });
    sql(stateDir, "UPDATE kv SET value = '9' WHERE key = 'count'");
    const tampered = ice(['state', 'verify', '--state', stateDir]);
    expect(tampered.code).toBe(1);
    // sha256("2"), the value the ledger recorded.
    expect(tampered.stdout).toContain('counter: "count" is "9" in the view but sha256:d4735e3a265e… (1 byte) in the ledger\n');
  });
});

describe('ice events list', () => {
  const stateDir = tempDir();
  let runId = '';

  beforeAll(async () => {
    const [emitted] = await runAll(stateDir, [['event-emitter', EMITTER_POLICY, 'counter.up {"n":1}\nother.x y\ncounter.down 2']]);
    runId = emitted?.runId ?? '';
    // A kv component in the same ledger, so the listing has something to leave out; and an emitter
    // whose policy records only digests.
    await runAll(stateDir, [
      ['counter', COUNTER_POLICY, 'a'],
      ['event-emitter', DIGEST_EMITTER_POLICY, 'counter.up secret'],
    ]);
  });

  it('lists exactly the granted events matching --kind, newest last', () => {
    const out = ice(['events', 'list', '--kind', 'counter.*', '--state', stateDir]);
    expect(out.code).toBe(0);
    const lines = out.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^run +seq +at +component +kind +payload$/);
    expect(lines.slice(2).map((line) => line.split(/ {2,}/))).toEqual([
      [runId, '1', expect.stringMatching(/^\d{4}-\d\d-\d\dT/), 'emitter', 'counter.up', '{"n":1}'],
      [runId, '3', expect.stringMatching(/^\d{4}-\d\d-\d\dT/), 'emitter', 'counter.down', '2'],
    ]);
    // other.x was denied: it did not happen, whatever the pattern.
    expect(ice(['events', 'list', '--state', stateDir]).stdout).not.toContain('other.x');
    expect(ice(['events', 'list', '--kind', 'other.*', '--state', stateDir]).stdout).toBe('(no events)\n');
  });

  it('--json prints one {run, seq, at, component, kind, payload} per line', () => {
    const out = ice(['events', 'list', '--json', '--kind', 'counter.up', '--component', 'emitter', '--state', stateDir]);
    expect(out.code).toBe(0);
    const events = out.stdout.trimEnd().split('\n').map((line) => JSON.parse(line));
    expect(events).toEqual([{ run: runId, seq: 1, at: expect.any(String), component: 'emitter', kind: 'counter.up', payload: '{"n":1}' }]);
    expect(Object.keys(events[0])).toEqual(['run', 'seq', 'at', 'component', 'kind', 'payload']);
  });

  it('a bad pattern or an unknown component is a usage error naming the fix', () => {
    const bad = ice(['events', 'list', '--kind', 'counter*up', '--state', stateDir]);
    expect(bad).toMatchObject({ code: 2, stdout: '' });
    expect(bad.stderr).toContain('ice events list: bad --kind pattern "counter*up": "*" may only end a pattern (e.g. "counter.*")');
    const unknown = ice(['events', 'list', '--component', 'emiter', '--state', stateDir]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no runs of component "emiter" in the ledger');
    expect(unknown.stderr).toContain('components: counter, emitter, hushed');
  });

  it('shows a payload recorded under digest capture as its digest; an exact --kind still matches it', () => {
    const digest = (text: string): string => createHash('sha256').update(text).digest('hex');
    const out = ice(['events', 'list', '--component', 'hushed', '--kind', 'counter.up', '--state', stateDir]);
    expect(out.code).toBe(0);
    const row = out.stdout.trimEnd().split('\n')[2]?.split(/ {2,}/);
    expect(row?.slice(3)).toEqual(['hushed', `sha256:${digest('counter.up').slice(0, 12)}… (10 bytes)`, `sha256:${digest('secret').slice(0, 12)}… (6 bytes)`]);
    const json = JSON.parse(ice(['events', 'list', '--json', '--component', 'hushed', '--state', stateDir]).stdout);
    expect(json.payload).toEqual({ sha256: digest('secret'), size: 6 });
  });
});
