/** The fetcher example guest (an API call, then a model call) behaves the same in both languages. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Host } from '../host/src/index.js';
import { BAD_UTF8, echoServer, type TestServer } from './egress-servers.js';
import { freshHost, callsOf } from './helpers.js';
import { guestWasm, LANGUAGES } from './paths.js';

let server: TestServer;
let host: Host;
let guestLog: string[];

beforeAll(async () => {
  server = await echoServer();
  ({ host, guestLog } = await freshHost());
});
afterAll(async () => {
  host.close();
  await server.close();
});

const policy = () => ({
  version: 1,
  component: 'fetcher',
  grants: { log: { levels: ['info', 'error'] }, http: { allow: [{ url: `${server.origin}/status` }] }, model: { models: ['local/echo'], maxTokensPerCall: 64 } },
});

describe.each(LANGUAGES)('fetcher (%s)', (language) => {
  it('fetches, summarizes with the local model, and logs', async () => {
    const agent = await host.load(guestWasm('fetcher', language), policy());
    const result = await agent.run(`${server.origin}/status`);
    expect(result.ok).toBe(true);
    const output = result.ok ? result.output : '';
    expect(output).toMatch(/^status=200 bytes=\d+ summary=\[echo\] \{"method":"GET","url":"\/status".*\} tokens=\d+\+\d+$/u);
    expect(guestLog.at(-1)).toMatch(/^info: fetched 200 \(\d+ bytes\)$/u);
    expect(callsOf(host, result.runId).map((c) => c.call)).toEqual([
      'ice:agent/http@0.1.0#fetch',
      'ice:agent/log@0.1.0#write',
      'ice:agent/model@0.1.0#complete',
    ]);
  });

  it('decodes a body that is not UTF-8 exactly as TextDecoder does (one U+FFFD per maximal bad subpart)', async () => {
    const agent = await host.load(guestWasm('fetcher', language), { ...policy(), grants: { ...policy().grants, http: { allow: [{ url: `${server.origin}/bad-utf8` }] } } });
    const result = await agent.run(`${server.origin}/bad-utf8`);
    const expected = new TextDecoder().decode(BAD_UTF8);
    expect(result.ok ? result.output : result.error).toContain(`summary=[echo] ${expected} tokens=`);
  });

  it('returns the denial as its error for a URL the policy does not allow', async () => {
    const agent = await host.load(guestWasm('fetcher', language), policy());
    const result = await agent.run(`${server.origin}/elsewhere`);
    expect(result).toMatchObject({ ok: false, outcome: 'error' });
    expect(result.ok ? '' : result.error).toMatch(/^http\.fetch denied: http\.fetch denied for component "fetcher": GET http:\/\/127\.0\.0\.1:\d+\/elsewhere matches no rule/u);
  });
});
