/**
 * `ice mcp` as an MCP client sees it: the real CLI spawned over stdio, driven by the SDK's own Client
 * (which also validates every structured result against the tool's output schema). Agents: the calc
 * example (typed exports, kv), the hello agent (the ICE world's run), the Rust WASI command.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, type ClientOptions } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { serializeMessage } from '@modelcontextprotocol/sdk/shared/stdio.js';
import { ElicitRequestSchema, ErrorCode, LATEST_PROTOCOL_VERSION, McpError, type CallToolResult, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../host/src/core/digest.js';
import { ice, tempDir } from './helpers.js';
import { CALC_COMPONENT, COMMAND_COMPONENT, guestWasm, ICE_BIN, ROOT } from './paths.js';

const CALC_POLICY = 'version: 1\ncomponent: calc\ngrants:\n  kv: { read: ["notes/*", "shared/*"], write: ["notes/*"], ask: ["shared/*"], askTimeoutMs: 20000 }\n';
const HELLO_POLICY = 'version: 1\ncomponent: hello\ngrants:\n  log: {}\n';
const COMMAND_POLICY =
  'version: 1\ncomponent: cmd\ngrants:\n  wasi: { args: ["cmd"], env: {}, stdin: input, stdout: capture, stderr: capture, clocks: allow, random: allow, filesystem: deny }\n';

/** A config dir with the three agents; `extra` lines are appended to calc's entry. */
function writeConfig(calcExtra = ''): { dir: string; config: string } {
  const dir = tempDir('ice-mcp-');
  writeFileSync(join(dir, 'calc.policy.yaml'), CALC_POLICY);
  writeFileSync(join(dir, 'hello.policy.yaml'), HELLO_POLICY);
  writeFileSync(join(dir, 'cmd.policy.yaml'), COMMAND_POLICY);
  const config = join(dir, 'agents.yaml');
  writeFileSync(
    config,
    `agents:\n  - name: calc\n    component: ${CALC_COMPONENT}\n    policy: ./calc.policy.yaml\n${calcExtra}` +
      `  - name: hello\n    component: ${guestWasm('hello')}\n    policy: ./hello.policy.yaml\n` +
      `  - name: cmd\n    component: ${COMMAND_COMPONENT}\n    policy: ./cmd.policy.yaml\n`,
  );
  return { dir, config };
}

interface Session {
  client: Client;
  stderr: () => string;
  close: () => Promise<void>;
}

async function connect(
  config: string,
  state: string,
  answer?: 'approve' | 'refuse' | 'decline',
  options: { nodeArgs?: string[]; iceArgs?: string[]; capabilities?: ClientOptions['capabilities'] } = {},
): Promise<Session> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [...(options.nodeArgs ?? []), ICE_BIN, 'mcp', '--config', config, '--state', state, ...(options.iceArgs ?? [])],
    cwd: ROOT,
    env: { ...process.env, ICE_LOG_LEVEL: 'warn' } as Record<string, string>,
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const capabilities = options.capabilities ?? (answer ? { elicitation: {} } : undefined);
  const client = new Client({ name: 'ice-test', version: '1.0.0' }, capabilities ? { capabilities } : {});
  if (answer) {
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      expect(request.params.message).toBe('Agent calc (kv.set) asks: set "shared/plan"\nvalue (4 bytes): "ship"\nPolicy rule: grants.kv.ask[0]. Approve this one call? (no answer in 20 s means no)');
      if (answer === 'decline') return { action: 'decline' };
      return { action: 'accept', content: { approve: answer === 'approve' } };
    });
  }
  await client.connect(transport);
  return { client, stderr: () => stderr, close: () => client.close() };
}

const text = (result: CallToolResult) => (result.content[0] as { text: string }).text;

/** `ice audit show <run> --json`: the run's records. */
type ShownRecord = { type: string; call?: string; decision?: string; approval?: { by: string; answer: string; reason?: string } };

function auditShow(runId: string, state: string): ShownRecord[] {
  const show = ice(['audit', 'show', runId, '--json', '--state', state]);
  expect(show.code).toBe(0);
  // One stored row per line: a record, or (ledger v2) a batch whose records are the run's calls.
  return show.stdout
    .trim()
    .split('\n')
    .flatMap((l) => {
      const row = JSON.parse(l) as ShownRecord & { records?: ShownRecord[] };
      return row.type === 'batch' ? row.records! : [row];
    });
}

describe('ice mcp over stdio (the SDK client)', () => {
  const { config } = writeConfig();
  const state = tempDir();
  let session: Session;
  beforeAll(async () => {
    session = await connect(config, state);
  });
  afterAll(async () => session.close());

  it('lists one tool per export, with input and output schemas from the WIT types', async () => {
    const { tools } = await session.client.listTools();
    const names = tools.map((t) => t.name);
    expect(names).toEqual([
      'calc_add',
      'calc_divide',
      'calc_greet',
      'calc_stats',
      'calc_first-char',
      'calc_checksum',
      'calc_remember',
      'calc_recall',
      'calc_geometry_area',
      'calc_geometry_centroid',
      'calc_geometry_describe-style',
      'hello_run',
      'cmd_run',
    ]);
    const add = tools.find((t) => t.name === 'calc_add')!;
    expect(add.description).toBe('Adds two numbers, wrapping at 2^32.\nadd: func(a: u32, b: u32) -> u32');
    expect(add.inputSchema).toEqual({
      type: 'object',
      description: 'Adds two numbers, wrapping at 2^32.',
      properties: { a: { type: 'integer', minimum: 0, maximum: 4294967295 }, b: { type: 'integer', minimum: 0, maximum: 4294967295 } },
      required: ['a', 'b'],
      additionalProperties: false,
    });
    expect(add.outputSchema).toEqual({ type: 'object', properties: { result: { type: 'integer', minimum: 0, maximum: 4294967295 } }, required: ['result'], additionalProperties: false });
    expect(tools.find((t) => t.name === 'hello_run')!.inputSchema).toMatchObject({ required: ['input'] });
    expect(tools.find((t) => t.name === 'hello_run')!.outputSchema).toBeUndefined();
    expect(tools.find((t) => t.name === 'cmd_run')!.inputSchema).toEqual({
      type: 'object',
      properties: { args: { type: 'array', items: { type: 'string' } }, stdin: { type: 'string' } },
      additionalProperties: false,
    });
  });

  it("every schema compiles in the SDK client's validator and in a strict 2020-12 validator", async () => {
    const { tools } = await session.client.listTools();
    const sdk = new AjvJsonSchemaValidator();
    const strict2020 = new Ajv2020({ strict: true });
    for (const tool of tools) {
      for (const schema of [tool.inputSchema, tool.outputSchema].filter((s) => s !== undefined)) {
        expect(schema).not.toHaveProperty('$schema');
        expect(() => sdk.getValidator(schema)).not.toThrow();
        expect(() => strict2020.compile(schema), tool.name).not.toThrow();
      }
    }
    // The SDK's validator is draft-07: it checks a tuple's length, not its elements (prefixItems is 2020-12).
    const stats = tools.find((t) => t.name === 'calc_stats')!.outputSchema!;
    expect(sdk.getValidator(stats)({ result: ['x', 'y', 'z'] }).valid).toBe(true);
    expect(strict2020.compile(stats)({ result: ['x', 'y', 'z'] })).toBe(false);
  });

  it('a call is one governed run: structured result, run id and ledger root in _meta', async () => {
    const result = (await session.client.callTool({ name: 'calc_add', arguments: { a: 2, b: 3 } })) as CallToolResult;
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toEqual({ result: 5 });
    expect(text(result)).toBe('5');
    expect(result._meta).toMatchObject({ 'ice/outcome': 'ok', 'ice/runId': expect.stringMatching(/^[0-9A-Z]{26}$/), 'ice/ledgerRoot': expect.stringMatching(/^[0-9a-f]{64}$/) });
    // The run is in the ledger (read by the CLI while the server keeps serving), and its chain verifies.
    const runId = String(result._meta!['ice/runId']);
    const records = auditShow(runId, state);
    expect(records[0]).toMatchObject({ type: 'run-start' });
    expect(records.at(-1)).toMatchObject({ type: 'run-end' });
    const verify = ice(['audit', 'verify', runId, '--state', state]);
    expect([verify.code, verify.stderr]).toEqual([0, '']);
    // The client checked these against the output schemas (tuples, options of records, 64-bit strings).
    expect(((await session.client.callTool({ name: 'calc_stats', arguments: { xs: [1, 2, 6] } })) as CallToolResult).structuredContent).toEqual({ result: [3, 3, 6] });
    expect(((await session.client.callTool({ name: 'calc_geometry_centroid', arguments: { points: [] } })) as CallToolResult).structuredContent).toEqual({ result: null });
    expect(((await session.client.callTool({ name: 'calc_checksum', arguments: { data: [] } })) as CallToolResult).structuredContent).toEqual({ result: '14695981039346656037' });
  });

  it("a denial the guest returns as its error, and a function's err, are isError with the reason", async () => {
    const denied = (await session.client.callTool({ name: 'calc_remember', arguments: { key: 'secrets/x', value: 'v' } })) as CallToolResult;
    expect(denied.isError).toBe(true);
    expect(text(denied)).toContain('error: "kv.set(\\"secrets/x\\") denied for component \\"calc\\"');
    expect(denied._meta).toMatchObject({ 'ice/outcome': 'error' });
    const err = (await session.client.callTool({ name: 'calc_divide', arguments: { a: 1, b: 0 } })) as CallToolResult;
    expect([err.isError, text(err)]).toEqual([true, 'error: "division by zero"']);
  });

  it('bad arguments and unknown tools are invalid-params errors naming the path; nothing runs', async () => {
    const wrongType = await session.client.callTool({ name: 'calc_add', arguments: { a: 1, b: 'two' } }).catch((e: unknown) => e);
    expect(wrongType).toBeInstanceOf(McpError);
    expect((wrongType as McpError).code).toBe(-32602);
    // The server's message as it is (the client's McpError adds the one prefix).
    expect((wrongType as McpError).message).toMatch(/^MCP error -32602: invalid arguments for add: b: /);
    const run = await session.client.callTool({ name: 'hello_run', arguments: { text: 'x' } }).catch((e: unknown) => e);
    expect([(run as McpError).code, (run as McpError).message]).toEqual([-32602, 'MCP error -32602: invalid arguments for run: unknown argument "text" (the arguments are { "input": <string> })']);
    const cmd = await session.client.callTool({ name: 'cmd_run', arguments: { args: ['a', 2] } }).catch((e: unknown) => e);
    expect((cmd as McpError).message).toContain('invalid arguments for run: args[1]: expected a string');
    const invalid = await session.client.callTool({ name: 'calc_geometry_area', arguments: { s: { tag: 'rect', val: [{ x: 0, y: 0 }, { x: 'one', y: 1 }] } } }).catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(McpError);
    expect((invalid as McpError).code).toBe(ErrorCode.InvalidParams);
    expect((invalid as McpError).message).toContain('invalid arguments for geometry.area: s.val[1].x: expected a number (f64)');
    const unknown = await session.client.callTool({ name: 'calc_policy', arguments: {} }).catch((e: unknown) => e);
    expect((unknown as McpError).code).toBe(ErrorCode.InvalidParams);
    expect((unknown as McpError).message).toContain('unknown tool "calc_policy"');
  });

  it('serves ICE-world agents and WASI commands too; guest logs go to stderr, never the protocol stream', async () => {
    const hello = (await session.client.callTool({ name: 'hello_run', arguments: { input: 'Ada' } })) as CallToolResult;
    expect(text(hello)).toBe('hello, Ada!');
    const cmd = (await session.client.callTool({ name: 'cmd_run', arguments: { args: ['x', 'y'], stdin: 'in' } })) as CallToolResult;
    expect(text(cmd)).toBe('args: x y\nstdin: in\n');
    expect(session.stderr()).toContain('[hello info] hello called with 3 chars');
  });

  it('an ask rule is denied for a client that cannot elicit', async () => {
    const result = (await session.client.callTool({ name: 'calc_remember', arguments: { key: 'shared/plan', value: 'v' } })) as CallToolResult;
    expect(result.isError).toBe(true);
    expect(text(result)).toContain('the MCP client does not support (form) elicitation, so nobody can approve this ask');
    const approval = auditShow(String(result._meta!['ice/runId']), state)
      .map((r) => r.approval)
      .find(Boolean);
    expect(approval).toMatchObject({ by: 'ice', answer: 'denied' });
  });
});

describe('ice mcp: what a guest does with a denial', () => {
  it('an ICE-world guest that carries on after a denial answers ok; the denial is in its output and the ledger', async () => {
    const dir = tempDir('ice-mcp-');
    writeFileSync(join(dir, 'denied.policy.yaml'), 'version: 1\ncomponent: denied\ngrants:\n  log: {}\n  kv: deny\n');
    writeFileSync(join(dir, 'agents.yaml'), `agents:\n  - { name: denied, component: ${guestWasm('denied')}, policy: ./denied.policy.yaml }\n`);
    const state = tempDir();
    const session = await connect(join(dir, 'agents.yaml'), state);
    try {
      const result = (await session.client.callTool({ name: 'denied_run', arguments: { input: 'tok' } })) as CallToolResult;
      // guests/denied returns ok("<kind>: <message>") when kv.set is denied: not a tool error.
      expect(result.isError).toBeFalsy();
      expect(text(result)).toBe('denied: kv.set denied for component "denied": grants.kv is deny in policy denied.policy.yaml');
      const records = auditShow(String(result._meta!['ice/runId']), state);
      expect(records.find((r) => r.call === 'ice:agent/kv@0.1.0#set')).toMatchObject({ decision: 'deny', rule: 'grants.kv' });
      expect(records.at(-1)).toMatchObject({ type: 'run-end', outcome: 'ok', counts: { denied: 1 } });
    } finally {
      await session.close();
    }
  });
});

describe('ice mcp: asks go to the client by elicitation', () => {
  const { config } = writeConfig();

  for (const [answer, ok] of [
    ['approve', true],
    ['refuse', false],
    ['decline', false],
  ] as const) {
    it(`the user's ${answer} decides the call, and the ledger says who answered`, async () => {
      const state = tempDir();
      const session = await connect(config, state, answer);
      let runId: string;
      try {
        const result = (await session.client.callTool({ name: 'calc_remember', arguments: { key: 'shared/plan', value: 'ship' } })) as CallToolResult;
        expect(Boolean(result.isError)).toBe(!ok);
        runId = String(result._meta?.['ice/runId']);
      } finally {
        await session.close();
      }
      const show = ice(['audit', 'show', runId, '--json', '--state', state]);
      const records = show.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { approval?: { by: string; answer: string } });
      const approval = records.map((r) => r.approval).find(Boolean);
      expect(approval).toMatchObject({ by: 'mcp-client', answer: ok ? 'approved' : 'denied' });
      expect(ice(['audit', 'verify', runId, '--state', state]).code).toBe(0);
    });
  }
});

describe('ice mcp: runs that end badly are tool errors', () => {
  it('a trap and a limit are isError, with the reason and the run in _meta', async () => {
    const dir = tempDir('ice-mcp-');
    writeFileSync(join(dir, 'trap.policy.yaml'), 'version: 1\ncomponent: trap\ngrants:\n  log: {}\n');
    writeFileSync(
      join(dir, 'hostile.policy.yaml'),
      'version: 1\ncomponent: hostile\nlimits: { fuel: 20000000, timeoutMs: 60000 }\ngrants:\n  log: {}\n  clock: { maxCalls: 1000 }\n  kv: { read: ["count"] }\n  events: { kinds: ["flood.*"] }\n',
    );
    writeFileSync(
      join(dir, 'agents.yaml'),
      `agents:\n  - { name: trap, component: ${guestWasm('trap')}, policy: ./trap.policy.yaml }\n  - { name: hostile, component: ${guestWasm('hostile')}, policy: ./hostile.policy.yaml }\n`,
    );
    const state = tempDir();
    const session = await connect(join(dir, 'agents.yaml'), state);
    try {
      const trap = (await session.client.callTool({ name: 'trap_run', arguments: { input: 'abort' } })) as CallToolResult;
      expect(trap.isError).toBe(true);
      expect(text(trap)).toMatch(/^trap \(guest blame\): /);
      expect(trap._meta).toMatchObject({ 'ice/outcome': 'trap', 'ice/runId': expect.any(String) });
      const limit = (await session.client.callTool({ name: 'hostile_run', arguments: { input: 'loop' } })) as CallToolResult;
      expect(limit.isError).toBe(true);
      expect(text(limit)).toMatch(/^limit \(fuel\): /);
      expect(limit._meta).toMatchObject({ 'ice/outcome': 'limit' });
      expect(auditShow(String(limit._meta!['ice/runId']), state).at(-1)).toMatchObject({ type: 'run-end', outcome: 'limit' });
    } finally {
      await session.close();
    }
  });
});

describe('ice mcp: an ask open when the client goes away', () => {
  it('is denied at once: the server ends the run and exits without waiting for the ask to time out', async () => {
    const { config } = writeConfig();
    const state = tempDir();
    let asked!: () => void;
    const askedPromise = new Promise<void>((resolve) => (asked = resolve));
    const session = await connect(config, state, undefined, { capabilities: { elicitation: {} } });
    // A user who never answers.
    session.client.setRequestHandler(ElicitRequestSchema, () => {
      asked();
      return new Promise(() => {});
    });
    const pending = session.client.callTool({ name: 'calc_remember', arguments: { key: 'shared/plan', value: 'v' } }).catch((e: unknown) => e);
    await askedPromise;
    const started = performance.now();
    await session.close();
    // StdioClientTransport.close waits 2 s for the process to exit before it sends SIGTERM.
    expect(performance.now() - started).toBeLessThan(1900);
    await pending;
    const records = auditShow('last', state);
    const result = records.find((r) => r.type === 'result') as { approval?: object; outcome?: { err?: { message: string } } };
    expect(result.approval).toMatchObject({ by: 'mcp-client', answer: 'denied' });
    expect(result.outcome?.err?.message).toBe(
      'kv.set needs approval under grants.kv.ask[0] and was not approved: the approver (mcp-client) said no: the MCP server closed (the client went away) before its user answered',
    );
    expect(records.at(-1)).toMatchObject({ type: 'run-end', outcome: 'error' });
  });
});

describe('ice mcp: elicitation the client cannot do', () => {
  it('a client that elicits by URL only gets no form: the ask is denied, saying why', async () => {
    const { config } = writeConfig();
    const state = tempDir();
    const session = await connect(config, state, undefined, { capabilities: { elicitation: { url: {} } } });
    try {
      const result = (await session.client.callTool({ name: 'calc_remember', arguments: { key: 'shared/plan', value: 'v' } })) as CallToolResult;
      expect(result.isError).toBe(true);
      expect(text(result)).toContain('does not support (form) elicitation');
    } finally {
      await session.close();
    }
  });
});

describe('ice mcp: execution and the process', () => {
  it('--in-process serves the same tools on the host thread', async () => {
    const dir = tempDir('ice-mcp-');
    writeFileSync(join(dir, 'calc.policy.yaml'), 'version: 1\ncomponent: calc\ngrants:\n  kv: { read: ["notes/*"], write: ["notes/*"] }\n');
    writeFileSync(join(dir, 'agents.yaml'), `agents:\n  - { name: calc, component: ${CALC_COMPONENT}, policy: ./calc.policy.yaml }\n`);
    const state = tempDir();
    const session = await connect(join(dir, 'agents.yaml'), state, undefined, { iceArgs: ['--in-process'] });
    try {
      const sum = (await session.client.callTool({ name: 'calc_add', arguments: { a: 4294967295, b: 2 } })) as CallToolResult;
      expect(sum.structuredContent).toEqual({ result: 1 });
      await session.client.callTool({ name: 'calc_remember', arguments: { key: 'notes/a', value: 'x' } });
      const recalled = (await session.client.callTool({ name: 'calc_recall', arguments: { key: 'notes/a' } })) as CallToolResult;
      expect(recalled.structuredContent).toEqual({ result: 'x' });
    } finally {
      await session.close();
    }
  });

  it('whatever else writes to stdout goes to stderr: the protocol stream stays JSON-RPC', async () => {
    const { config } = writeConfig();
    // Stray writes from the main thread and from a worker thread, once ice mcp has taken stdout over.
    const stray = `
      const original = process.stdout.write;
      const timer = setInterval(() => {
        if (process.stdout.write === original) return;
        clearInterval(timer);
        console.log('stray main');
        new (require('node:worker_threads').Worker)('console.log("stray worker")', { eval: true }).unref();
      }, 5);
      timer.unref();`;
    const preload = join(tempDir(), 'stray.cjs');
    writeFileSync(preload, stray);
    const session = await connect(config, tempDir(), undefined, { nodeArgs: ['--require', preload] });
    try {
      await expect.poll(() => session.stderr(), { timeout: 10_000 }).toContain('stray worker');
      const result = (await session.client.callTool({ name: 'hello_run', arguments: { input: 'x' } })) as CallToolResult;
      expect(text(result)).toBe('hello, x!');
      expect(session.stderr()).toContain('stray main');
      expect(session.stderr()).toContain('stray worker');
    } finally {
      await session.close();
    }
  });

  it('answers every call a client sent before it closed stdin, and nothing but JSON-RPC reaches stdout', () => {
    const { config } = writeConfig();
    const messages: JSONRPCMessage[] = [
      { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'eager', version: '1' } } },
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'hello_run', arguments: { input: 'a' } } },
      { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'calc_divide', arguments: { a: 7, b: 2 } } },
      { jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'calc_add', arguments: { a: -1, b: 2 } } },
      { jsonrpc: '2.0', id: 5, method: 'resources/list' },
    ];
    const out = spawnSync(process.execPath, [ICE_BIN, 'mcp', '--config', config, '--state', tempDir()], {
      cwd: ROOT,
      input: messages.map(serializeMessage).join(''),
      encoding: 'utf8',
      env: { ...process.env, ICE_LOG_LEVEL: 'info' },
    });
    expect(out.status).toBe(0);
    const replies = out.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { id: number; result?: { content: { text: string }[] }; error?: { code: number; message: string } });
    const byId = new Map(replies.map((r) => [r.id, r]));
    expect([...byId.keys()].sort()).toEqual([1, 2, 3, 4, 5]);
    expect(byId.get(2)!.result!.content[0]!.text).toBe('hello, a!');
    expect(byId.get(3)!.result!.content[0]!.text).toBe('"3"');
    expect(byId.get(4)!.error).toEqual({ code: -32602, message: 'invalid arguments for add: a: -1 is out of range for u32 (0 to 4294967295)' });
    // Tools are the only capability: anything else is method-not-found.
    expect(byId.get(5)!.error).toMatchObject({ code: ErrorCode.MethodNotFound });
    // ICE's own log (info level here) and the guest's log line went to stderr.
    expect(out.stderr).toContain('[hello info] hello called with 1 chars');
    expect(out.stderr).toContain('ice mcp: serving 13 tools from 3 agents on stdio');
  });

  it('SIGTERM ends the server cleanly (exit 0)', async () => {
    const { config } = writeConfig();
    const child = spawn(process.execPath, [ICE_BIN, 'mcp', '--config', config, '--state', tempDir()], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString('utf8');
        if (stderr.includes('ice mcp: serving')) resolve();
      });
      child.on('exit', () => reject(new Error(`ice mcp exited early: ${stderr}`)));
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).not.toContain('internal error');
  });
});

describe('ice mcp: refusals before serving', () => {
  it('a pinned sha256 that is not the file refuses to start, naming the agent (exit 2)', () => {
    const { config } = writeConfig(`    sha256: "${'b'.repeat(64)}"\n`);
    const out = ice(['mcp', '--config', config, '--state', tempDir()]);
    expect(out.code).toBe(2);
    expect(out.stdout).toBe('');
    expect(out.stderr).toContain(`agent calc: ${CALC_COMPONENT} is not the pinned component: its sha256 is ${sha256Hex(readFileSync(CALC_COMPONENT))}`);
  });

  it('a missing component is refused naming the agent, pinned or not (exit 2)', () => {
    for (const pin of ['', `    sha256: "${'b'.repeat(64)}"\n`]) {
      const { dir } = writeConfig();
      const config = join(dir, 'gone.yaml');
      writeFileSync(config, `agents:\n  - name: gone\n    component: ./gone.wasm\n    policy: ./calc.policy.yaml\n${pin}`);
      const out = ice(['mcp', '--config', config, '--state', tempDir()]);
      expect([out.code, out.stdout]).toEqual([2, '']);
      expect(out.stderr).toMatch(new RegExp(`^agent gone: cannot read component ${join(dir, 'gone.wasm')}: no such file`));
    }
  });

  it('a config with an unknown key or a duplicate agent is refused with the fix', () => {
    const { dir, config } = writeConfig('    grants: { kv: {} }\n');
    const unknown = ice(['mcp', '--config', config, '--state', tempDir()]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('agents[0] (agent calc): unknown key grants; allowed: name, component, policy, sha256');
    const twice = join(dir, 'twice.yaml');
    writeFileSync(twice, `agents:\n  - { name: a, component: ${CALC_COMPONENT}, policy: ./calc.policy.yaml }\n  - { name: a, component: ${CALC_COMPONENT}, policy: ./calc.policy.yaml }\n`);
    expect(ice(['mcp', '--config', twice, '--state', tempDir()]).stderr).toContain('names agent a twice (agents[0] and agents[1])');
    const underscore = join(dir, 'underscore.yaml');
    writeFileSync(underscore, `agents:\n  - { name: my_calc, component: ${CALC_COMPONENT}, policy: ./calc.policy.yaml }\n`);
    expect(ice(['mcp', '--config', underscore, '--state', tempDir()]).stderr).toContain('"my_calc" is not a valid agent name: use 1 to 32 characters from a-z, 0-9, "-"');
    const missing = join(dir, 'missing.yaml');
    writeFileSync(missing, `agents:\n  - { name: calc, component: ${CALC_COMPONENT} }\n`);
    const out = ice(['mcp', '--config', missing, '--state', tempDir()]);
    expect([out.code, out.stderr]).toEqual([2, `the MCP config ${missing} is invalid:\n  agents[0].policy (agent calc): required: the path of its policy file, relative to the config file\n`]);
  });

  it('a policy refused for one agent names it', () => {
    const { dir, config } = writeConfig();
    writeFileSync(join(dir, 'hello.policy.yaml'), 'version: 1\ncomponent: hello\ngrants: {}\n');
    const out = ice(['mcp', '--config', config, '--state', tempDir()]);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('agent hello: ');
    expect(out.stderr).toContain('grants.log');
  });
});
