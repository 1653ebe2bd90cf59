/**
 * grants.http and grants.model in the policy: what compiles, what is refused (with the path and the
 * fix), and the defaults that end up in the recorded document.
 */
import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../host/src/capabilities/policy.js';
import type { HttpGrant } from '../host/src/capabilities/http/index.js';
import type { KvGrant } from '../host/src/capabilities/kv/index.js';
import type { ModelGrant } from '../host/src/capabilities/model/index.js';
import { PolicyError } from '../host/src/policy/index.js';

const base = (grants: object) => ({ version: 1, component: 'c', grants });

function issues(grants: object): string[] {
  try {
    compilePolicy(base(grants), 'p.yaml');
  } catch (error) {
    if (error instanceof PolicyError) return error.issues.map((i) => `${i.path}: ${i.message}`);
    throw error;
  }
  throw new Error('expected a PolicyError, but the policy loaded');
}

describe('grants.http', () => {
  it('compiles rules into typed parts with defaults filled in', () => {
    const policy = compilePolicy(
      base({
        http: {
          allow: [
            { url: 'https://api.github.com/repos/*', methods: ['GET', 'POST'], inject: { header: 'Authorization', secret: 'GITHUB_TOKEN', format: 'Bearer {}' } },
            { url: 'http://10.0.0.5:8080/*' },
            { url: 'https://intranet.example/*', addresses: ['10.1.0.0/16'] },
          ],
          deny: [{ url: 'https://api.github.com/repos/admin*' }],
          ask: [{ url: 'https://api.github.com/*', methods: ['DELETE'] }],
        },
      }),
    );
    const http = policy.grants.http as HttpGrant;
    expect(http).toMatchObject({ maxRequestBytes: 1048576, maxResponseBytes: 1048576, timeoutMs: 10000, maxRedirects: 5, maxCalls: 100000 });
    expect(http.allow[0]).toMatchObject({ rule: 'grants.http.allow[0]', scheme: 'https', port: 443, host: { kind: 'exact', name: 'api.github.com' }, path: { kind: 'prefix', text: '/repos/' } });
    expect(http.allow[0]!.inject).toEqual({ header: 'Authorization', secret: 'GITHUB_TOKEN', format: 'Bearer {}' });
    // An exact IP names itself; `addresses` names ranges; neither: no non-public address.
    expect(http.allow[1]!.addresses.map((c) => c.prefix)).toEqual([32]);
    expect(http.allow[2]!.addresses.map((c) => c.prefix)).toEqual([16]);
    expect(http.allow[0]!.addresses).toEqual([]);
    expect(http.ask[0]).toMatchObject({ rule: 'grants.http.ask[0]', methods: ['DELETE'], askTimeoutMs: 60000 });
    expect(policy.document.grants.http).toMatchObject({ maxRedirects: 5, ask: [{ askTimeoutMs: 60000 }] });
  });

  it.each([
    [{ allow: [{ url: 'https://*.com/*' }] }, 'grants.http.allow[0].url: bad url "https://*.com/*": "*.com" would match every host under a top-level domain'],
    [{ allow: [{ url: 'https://api.example.com' }] }, 'grants.http.allow[0].url: bad url "https://api.example.com": there is no path'],
    [{ allow: [{ url: 'https://u:p@api.example.com/*' }] }, 'cannot contain a user name or password'],
    [{ allow: [{ url: 'https://api.example.com/*', methods: ['CONNECT'] }] }, 'grants.http.allow[0].methods: bad methods: "CONNECT" is never allowed'],
    [{ allow: [{ url: 'https://api.example.com/*', methods: ['get'] }] }, 'write "get" in uppercase: "GET"'],
    [{ allow: [{ url: 'http://2130706433/*' }] }, 'write the IPv4 address in dotted decimal form: "127.0.0.1"'],
    [{ allow: [{ url: 'https://a.example/*', inject: { header: 'Host', secret: 'T' } }] }, 'grants.http.allow[0].inject.header: "Host" is hop-by-hop or set by the host'],
    [{ allow: [{ url: 'https://a.example/*', inject: { header: 'X-Key', secret: 'ghp_abc-123' } }] }, 'write the name of the host\'s secret'],
    [{ allow: [{ url: 'https://a.example/*', inject: { header: 'X-Key', secret: 'T', format: 'Bearer' } }] }, 'must contain "{}" exactly once'],
    [{ allow: [{ url: 'https://a.example/*', inject: { header: 'X-Key', secret: 'T', format: 'A {}\r\nX: {}' } }] }, 'must contain "{}" exactly once'],
    [{ allow: [{ url: 'https://a.example/*', addresses: ['10.0.0.0/33'] }] }, 'bad address range "10.0.0.0/33"'],
    [{ deny: [{ url: 'https://a.example/*', inject: { header: 'X', secret: 'T' } }] }, 'grants.http.deny[0].inject: unknown key'],
    [{ allow: [{ url: 'https://a.example/*' }], maxResponseBytes: 64 * 1024 * 1024 }, 'grants.http.maxResponseBytes: must be an integer from 1 to 8388608'],
    [{ allow: [{ url: 'https://a.example/*' }], maxRedirects: 50 }, 'grants.http.maxRedirects'],
    [{ allow: [{ url: 'https://a.example/*' }], proxy: 'http://p' }, 'grants.http.proxy: unknown key'],
  ])('refuses %j', (http, message) => {
    expect(issues({ http }).join('\n')).toContain(message);
  });
});

describe('grants.model and kv ask rules', () => {
  it('compiles model patterns and budgets', () => {
    const model = compilePolicy(base({ model: { models: ['local/*', 'gpt-4o-mini'], ask: ['gpt-4o'], maxTokensPerRun: 4096 } })).grants.model as ModelGrant;
    expect(model.models.map((m) => [m.rule, m.kind, m.text])).toEqual([
      ['grants.model.models[0]', 'prefix', 'local/'],
      ['grants.model.models[1]', 'exact', 'gpt-4o-mini'],
    ]);
    expect(model).toMatchObject({ maxTokensPerCall: 1024, maxTokensPerRun: 4096, askTimeoutMs: 60000 });
  });

  it('requires the model list, and bounds the budgets', () => {
    expect(issues({ model: {} })).toEqual(['grants.model.models: missing; list the models the component may call, like models: ["local/*", "gpt-4o-mini"]']);
    expect(issues({ model: { models: ['x'], maxTokensPerCall: 0 } }).join()).toContain('grants.model.maxTokensPerCall');
  });

  it('compiles kv ask patterns', () => {
    const kv = compilePolicy(base({ kv: { write: ['count'], ask: ['config/*'], askTimeoutMs: 5000 } })).grants.kv as KvGrant;
    expect(kv.ask.map((m) => m.rule)).toEqual(['grants.kv.ask[0]']);
    expect(kv.askTimeoutMs).toBe(5000);
  });
});
