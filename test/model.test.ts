/**
 * Model calls through the real path (model-driver guest, worker, gateway): the deterministic `local`
 * provider, a fake OpenAI-compatible server on 127.0.0.1, token budgets enforced as `limit`, and the
 * ledger's record of each call (model, message count and sizes, usage, latency).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Host } from '../host/src/index.js';
import type { LedgerCall } from '../host/src/ledger/index.js';
import { fakeOpenAi, type FakeModel } from './egress-servers.js';
import { freshHost, callsOf } from './helpers.js';
import { guestWasm } from './paths.js';

const KEY = 'sk-test-9d1e0c4b7a2f';
let provider: FakeModel;
let host: Host;

beforeAll(async () => {
  provider = await fakeOpenAi(KEY);
  ({ host } = await freshHost(undefined, { secrets: { OPENAI_API_KEY: KEY }, models: { openai: { baseUrl: `${provider.origin}/v1` } } }));
});
afterAll(async () => {
  host.close();
  await provider.close();
});

type Answer = { ok: true; input: number; output: number; text: string } | { ok: false; kind: string; message: string };

async function drive(grant: object, lines: string[]): Promise<{ answers: Answer[]; calls: LedgerCall[] }> {
  const agent = await host.load(guestWasm('model-driver'), { version: 1, component: 'thinker', grants: { log: {}, model: grant } });
  const result = await agent.run(lines.join('\n'));
  if (!result.ok) throw new Error(result.error);
  const answers = result.output.split('\n').map((l): Answer => {
    const [tag, a = '', b = '', c = ''] = l.split(' ');
    const unhex = (t: string) => Buffer.from(t, 'hex').toString('utf8');
    return tag === 'ok' ? { ok: true, input: Number(a), output: Number(b), text: unhex(c) } : { ok: false, kind: a, message: unhex(b) };
  });
  const calls = callsOf(host, result.runId).filter((c) => c.call.includes('/model@'));
  return { answers, calls };
}

describe('model.complete', () => {
  it('answers from the local provider deterministically and records the call', async () => {
    const grant = { models: ['local/*'] };
    const first = await drive(grant, ['local/echo\t16\thello there']);
    const second = await drive(grant, ['local/echo\t16\thello there']);
    expect(first.answers).toEqual([{ ok: true, input: 4, output: 5, text: '[echo] hello there' }]);
    expect(second.answers).toEqual(first.answers);
    const record = first.calls[0]!;
    expect(record.decision).toBe('allow');
    expect(record.rule).toBe('grants.model.models[0]');
    expect(record.args[0]).toEqual({
      fields: {
        model: { value: 'local/echo' },
        messageCount: { value: 1 },
        messageBytes: { value: 11 },
        messages: { value: ['user: hello there'] },
        maxTokens: { value: 16 },
      },
    });
    expect(record.outcome).toEqual({ ok: { fields: { text: { value: '[echo] hello there' }, usage: { fields: { inputTokens: { value: 4 }, outputTokens: { value: 5 } } } } } });
    expect(record.durationUs).toBeGreaterThan(0);
  });

  it('calls an OpenAI-compatible provider with the host\'s key, which the guest never sees', async () => {
    const { answers, calls } = await drive({ models: ['gpt-test'] }, ['gpt-test\t32\thi', 'gpt-test\t32\tleak']);
    expect(answers[0]).toEqual({ ok: true, input: 11, output: 7, text: 'echo: hi' });
    expect(answers[1]).toMatchObject({ ok: true, text: 'your key is [secret OPENAI_API_KEY]' });
    expect(provider.seen.at(-1)!.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(JSON.stringify(calls)).not.toContain(KEY);
  });

  it('refuses an answer without usage (the budget depends on it)', async () => {
    provider.usage = null;
    try {
      const { answers, calls } = await drive({ models: ['gpt-test'] }, ['gpt-test\t32\thi']);
      expect(answers[0]).toMatchObject({ ok: false, kind: 'failed' });
      expect(answers[0]!.ok ? '' : answers[0]!.message).toContain('no usage');
      expect(calls[0]).toMatchObject({ decision: 'allow', outcome: { err: { kind: 'failed' } } });
    } finally {
      provider.usage = { prompt_tokens: 11, completion_tokens: 7 };
    }
  });

  it('enforces the token budgets as limit, and denies unlisted models', async () => {
    const { answers, calls } = await drive({ models: ['local/*'], maxTokensPerCall: 20, maxTokensPerRun: 30 }, [
      'local/a\t21\tx', // over maxTokensPerCall
      'local/a\t20\tabcdefgh', // uses 3 in + 3 out = 6
      'local/a\t20\tabcdefgh', // 6 + 20 ≤ 30: allowed, uses 6 more (12)
      'local/a\t20\tabcdefgh', // 12 + 20 > 30: limit
      'gpt-4o\t5\thi', // not listed
    ]);
    expect(answers.map((a) => (a.ok ? 'ok' : a.kind))).toEqual(['limit', 'ok', 'ok', 'limit', 'denied']);
    expect(calls.map((c) => c.rule)).toEqual([
      'grants.model.maxTokensPerCall',
      'grants.model.models[0]',
      'grants.model.models[0]',
      'grants.model.maxTokensPerRun',
      'grants.model.models',
    ]);
    expect(answers[3]!.ok ? '' : answers[3]!.message).toContain('this run has used 12 tokens; 20 more could pass grants.model.maxTokensPerRun (30)');
  });

  it('sends a model only an ask rule covers to the approver', async () => {
    const asked: string[] = [];
    const { host: asking } = await freshHost(undefined, {
      approve: (request) => {
        asked.push(`${request.rule} ${request.summary}`);
        return request.summary.includes('local/yes');
      },
      approverName: 'model-test',
    });
    try {
      const agent = await asking.load(guestWasm('model-driver'), { version: 1, component: 'thinker', grants: { log: {}, model: { models: [], ask: ['local/*'] } } });
      const result = await agent.run(['local/yes\t8\thi', 'local/no\t8\thi'].join('\n'));
      expect(result.ok && result.output.split('\n').map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['ok 2', 'err denied']);
      expect(asked).toEqual(['grants.model.ask[0] complete with model "local/yes" (max 8 tokens)', 'grants.model.ask[0] complete with model "local/no" (max 8 tokens)']);
      const calls = callsOf(asking, result.runId);
      expect(calls.map((c) => [c.decision, c.approval?.answer, c.approval?.by])).toEqual([
        ['allow', 'approved', 'model-test'],
        ['deny', 'denied', 'model-test'],
      ]);
    } finally {
      asking.close();
    }
  });

  it('fails cleanly when no provider serves the model', async () => {
    const { host: bare } = await freshHost();
    try {
      const agent = await bare.load(guestWasm('model-driver'), { version: 1, component: 'thinker', grants: { log: {}, model: { models: ['*'] } } });
      const result = await agent.run('gpt-4o\t8\thi');
      expect(result.ok && result.output.startsWith('err failed ')).toBe(true);
      const message = Buffer.from(result.ok ? result.output.split(' ')[2]! : '', 'hex').toString();
      expect(message).toContain('no provider for model "gpt-4o" is configured on this host');
    } finally {
      bare.close();
    }
  });
});
