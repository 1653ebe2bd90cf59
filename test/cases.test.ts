/**
 * End-to-end cases as folders: test/cases/<guest>--<scenario>/ holds
 *   policy.yaml   the policy the guest runs under
 *   input.txt     the run input (optional: empty input)
 *   expected.txt  the exact ok output, or expected.re a regular expression it must match (random or time),
 *                 or error.txt the exact err message, or trap.txt (blame, then part of the reason)
 *   ledger.txt    the exact call records: `<seq> <call> <decision> <rule>`, then `end <outcome>[ <blame>]`
 * Each case runs the real guest, in every language (built from guests/<guest> and guests/rust/<guest>),
 * under the real policy file, through the library API, on a fresh state dir; then the ledger chain is
 * verified. Both languages must give the same output and the same ledger, record for record.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXECUTIONS, freshHost, tempDir } from './helpers.js';
import { CASES_DIR, LANGUAGES, ROOT, guestWasm } from './paths.js';

const read = (dir: string, file: string): string | undefined =>
  existsSync(join(dir, file)) ? readFileSync(join(dir, file), 'utf8').replace(/\n$/, '') : undefined;

const MATRIX = LANGUAGES.flatMap((language) => EXECUTIONS.map((execution) => [language, execution] as const));

describe.each(MATRIX)('end-to-end cases (%s, %s)', (language, execution) => {
  for (const name of readdirSync(CASES_DIR).sort()) {
    const dir = join(CASES_DIR, name);
    const guest = name.split('--')[0]!;
    it(name, async () => {
      const { host } = await freshHost(tempDir(), { execution });
      try {
        const agent = await host.load(guestWasm(guest, language), relative(ROOT, join(dir, 'policy.yaml')));
        const result = await agent.run(read(dir, 'input.txt') ?? '');

        const expected = read(dir, 'expected.txt');
        const pattern = read(dir, 'expected.re');
        const error = read(dir, 'error.txt');
        const trap = read(dir, 'trap.txt');
        if (expected !== undefined) expect(result).toMatchObject({ ok: true, output: expected });
        if (pattern !== undefined) expect(result).toMatchObject({ ok: true, output: expect.stringMatching(new RegExp(pattern)) });
        if (error !== undefined) expect(result).toMatchObject({ ok: false, outcome: 'error', error });
        if (trap !== undefined) {
          const [blame, reason] = trap.split('\n');
          expect(result).toMatchObject({ ok: false, outcome: 'trap', blame });
          expect(result.ok ? '' : result.error).toContain(reason);
        }
        expect([expected, pattern, error, trap].filter((x) => x !== undefined)).toHaveLength(1);

        const records = host.readRun(result.runId);
        const lines = records.map(({ record: r }) =>
          r.type === 'call'
            ? `${r.seq} ${r.call} ${r.decision} ${r.rule}`
            : r.type === 'run-end'
              ? `end ${r.outcome}${r.blame ? ` ${r.blame}` : ''}`
              : 'start',
        );
        expect(lines.join('\n')).toBe(`start\n${read(dir, 'ledger.txt')}`);
        expect(result.calls).toBe(records.length - 2);
        expect(host.verify(result.runId)).toMatchObject({ ok: true });
        expect(records.at(-1)!.hash).toBe(result.ledgerRoot);
      } finally {
        host.close();
      }
    });
  }
});
