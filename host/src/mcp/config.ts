/**
 * The agents config of `ice mcp --config agents.yaml` and `ice serve --config ice.yaml`: which
 * components are served, each under its own policy, optionally pinned by digest; for `ice serve`, also
 * what wakes each one (triggers), how many of its runs may run at once and wait, and when its faults
 * quarantine it (`ice mcp` has no triggers and ignores those keys). Paths are relative to the config
 * file. Everything is checked before the server answers anything: a config that names a missing file, a
 * component that is not the pinned one, or two agents of one name stops the server with a message that
 * names the agent and the fix.
 *
 *   agents:
 *     - name: calc                     # tools are calc_<function>
 *       component: ./calc.wasm
 *       policy: ./calc.policy.yaml
 *       sha256: "4f1c…"                # optional: refuse to start if the file is not this component
 *     - name: notes
 *       component: ./notes.wasm
 *       policy: ./notes.policy.yaml    # must grant events.receive for the kinds below
 *       on:
 *         events: ["notes.*"]          # events other agents emit
 *         schedule: "*\/5 * * * *"      # cron: 5 fields, or 6 with seconds first
 *         http: /hooks/notes           # a webhook, checked by verify
 *         verify: { hmac: NOTES_HOOK_SECRET }   # or { token: NAME }: a secret's name
 *       concurrency: 1                 # runs at once (default 1: in arrival order)
 *       queue: 100                     # runs waiting at most (default 100); more are refused, recorded
 *       faults: { max: 3, windowMs: 60000 }     # quarantined at max faults (trap, limit) in the window
 */
import { Cron } from 'croner';
import { SECRET_NAME } from '../capabilities/secrets.js';
import { parsePattern } from '../policy/matchers.js';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { describeValue, formatPath } from '../policy/errors.js';

export interface AgentEntry {
  readonly name: string;
  /** Absolute path of the component. */
  readonly component: string;
  /** Absolute path of its policy file. */
  readonly policy: string;
  /** sha256 hex the component file must have. */
  readonly sha256?: string;
  /** What wakes it under `ice serve`. */
  readonly on: Triggers;
  /** Runs of this agent at once (1: serialized in arrival order). */
  readonly concurrency: number;
  /** Runs waiting at most; a trigger beyond it is refused (and recorded). */
  readonly queue: number;
  /** Faults (trap or limit) within `windowMs` that quarantine it. */
  readonly faults: { readonly max: number; readonly windowMs: number };
}

export interface Triggers {
  /** Event kind patterns (`notes.*`); its policy must also grant receiving them. */
  readonly events?: readonly string[];
  /** A cron expression. */
  readonly schedule?: string;
  /** A webhook path (`/hooks/<name>`). */
  readonly http?: string;
  /** How a webhook request is checked: an HMAC-SHA256 signature, or a token, with the named secret. */
  readonly verify?: { readonly hmac: string } | { readonly token: string };
}

export interface McpConfig {
  readonly source: string;
  readonly agents: readonly AgentEntry[];
}

/** A config that cannot be served: the message says where and how to fix it. */
export class McpConfigError extends Error {
  override readonly name = 'McpConfigError';
}

/** No `_`: it separates the agent from the function in tool names. */
const NAME = /^[a-z][a-z0-9-]{0,31}$/;
const MAX_AGENTS = 64;
const MAX_LISTED_ISSUES = 20;
const AGENT_KEYS = ['name', 'component', 'policy', 'sha256', 'on', 'concurrency', 'queue', 'faults'];
const HOOK_PATH = /^\/hooks\/[a-z0-9][a-z0-9._-]{0,63}$/;
const SECRET_RULE = 'the name of a secret (letters, digits, _) from --secrets or the environment';

const secretName = z
  .string({ error: (issue) => `expected ${SECRET_RULE}, got ${describeValue(issue.input)}` })
  .regex(SECRET_NAME, { error: (issue) => `expected ${SECRET_RULE}, got ${describeValue(issue.input)}` });

const On = z
  .object(
    {
      events: z
        .array(
          z.string({ error: (issue) => `expected an event kind pattern like "notes.*", got ${describeValue(issue.input)}` }).superRefine((text, ctx) => {
            const shape = parsePattern(text, 'notes.*');
            if ('problem' in shape) ctx.addIssue({ code: 'custom', message: `bad pattern ${JSON.stringify(text)}: ${shape.problem}` });
            // An event kind is 1-128 of letters, digits and . _ : / - (capabilities/events): a pattern no kind can match is a typo.
            else if (!/^(?:\*|[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}\*?)$/u.test(text)) ctx.addIssue({ code: 'custom', message: `bad pattern ${JSON.stringify(text)}: no event kind can match it (kinds are letters, digits and . _ : / -; a pattern is "*", a prefix ending in "*", or a kind)` });
          }),
          { error: (issue) => `expected a list of event kind patterns like ["notes.*"], got ${describeValue(issue.input)}` },
        )
        .min(1, { error: 'list at least one event kind pattern, like ["notes.*"], or leave events out' })
        .max(64, { error: 'at most 64 event patterns per agent' })
        .optional(),
      schedule: z
        .string({ error: (issue) => `expected a cron expression like "*/5 * * * *", got ${describeValue(issue.input)}` })
        .superRefine((text, ctx) => {
          const problem = cronProblem(text);
          if (problem) ctx.addIssue({ code: 'custom', message: `bad cron expression ${JSON.stringify(text)}: ${problem}` });
        })
        .optional(),
      http: z
        .string({ error: (issue) => `expected a webhook path like /hooks/notes, got ${describeValue(issue.input)}` })
        .regex(HOOK_PATH, { error: (issue) => `${describeValue(issue.input)} is not a webhook path: use /hooks/<name> (a-z, 0-9, ".", "_", "-"; at most 64)` })
        .optional(),
      verify: z
        .union([z.object({ hmac: secretName }).strict(), z.object({ token: secretName }).strict()], {
          error: (issue) => `expected { hmac: SECRET_NAME } or { token: SECRET_NAME }, got ${describeValue(issue.input)}`,
        })
        .optional(),
    },
    { error: (issue) => `expected triggers like { events: ["notes.*"] }, { schedule: "*/5 * * * *" } or { http: /hooks/notes, verify: { hmac: NAME } }, got ${describeValue(issue.input)}` },
  )
  .strict()
  .superRefine((on, ctx) => {
    // A webhook anyone can call is never the silent default.
    if (on.http !== undefined && on.verify === undefined) {
      ctx.addIssue({ code: 'custom', path: ['verify'], message: `required with http: how requests to ${on.http} are checked, { hmac: SECRET_NAME } (an X-Ice-Signature) or { token: SECRET_NAME } (an X-Ice-Token)` });
    }
    if (on.verify !== undefined && on.http === undefined) ctx.addIssue({ code: 'custom', path: ['verify'], message: 'verify checks webhook requests: set http: /hooks/<name> too, or leave verify out' });
  });

/** Why croner refuses `expression`, or undefined when it is a valid cron expression. */
function cronProblem(expression: string): string | undefined {
  try {
    new Cron(expression, { paused: true });
    return undefined;
  } catch (error) {
    return (error instanceof Error ? error.message : String(error)).replace(/^CronPattern: /u, '');
  }
}

const count = (what: string, max: number, fallback: number) =>
  z
    .number({ error: (issue) => `expected ${what}, a whole number from 1 to ${max}, got ${describeValue(issue.input)}` })
    .int({ error: (issue) => `expected ${what}, a whole number from 1 to ${max}, got ${describeValue(issue.input)}` })
    .min(1, { error: (issue) => `expected ${what}, a whole number from 1 to ${max}, got ${describeValue(issue.input)}` })
    .max(max, { error: (issue) => `expected ${what}, a whole number from 1 to ${max}, got ${describeValue(issue.input)}` })
    .default(fallback);

const Faults = z
  .object({ max: count('the faults that quarantine it', 1000, 3), windowMs: count('the window in ms', 86_400_000, 60_000) }, { error: (issue) => `expected { max: 3, windowMs: 60000 }, got ${describeValue(issue.input)}` })
  .strict();
const EXAMPLE = '[{ name: calc, component: ./calc.wasm, policy: ./calc.policy.yaml }]';

/** A zod message: `missing` when the key is absent, `wrong` (given what was there) otherwise. */
const required = (missing: string, wrong: string) => (issue: { input?: unknown }) =>
  issue.input === undefined ? `required: ${missing}` : `${wrong}, got ${describeValue(issue.input)}`;

const NAME_RULE = '1 to 32 characters from a-z, 0-9, "-", starting with a letter (its tools are named <name>_<function>, so no "_")';
const SHA256_RULE = 'the component\'s sha256 as 64 hex digits, quoted (sha256: "4f1c…"; `ice inspect` prints it)';

const Agent = z
  .object({
    name: z
      .string({ error: required(`the agent's name, ${NAME_RULE}`, `expected a name of ${NAME_RULE}`) })
      .regex(NAME, { error: (issue) => `${JSON.stringify(issue.input)} is not a valid agent name: use ${NAME_RULE}` }),
    component: z
      .string({ error: required('the path of the component (.wasm), relative to the config file', 'expected the path of the component (.wasm)') })
      .min(1, { error: 'expected the path of the component (.wasm), relative to the config file' }),
    policy: z
      .string({ error: required('the path of its policy file, relative to the config file', 'expected the path of its policy file') })
      .min(1, { error: 'expected the path of its policy file, relative to the config file' }),
    sha256: z
      .string({ error: (issue) => `expected ${SHA256_RULE}, got ${describeValue(issue.input)}` })
      .regex(/^[0-9a-fA-F]{64}$/, { error: (issue) => `expected ${SHA256_RULE}, got ${describeValue(issue.input)}` })
      .transform((s) => s.toLowerCase())
      .optional(),
    on: On.default({}),
    concurrency: count('the runs of this agent at once', 64, 1),
    queue: count('the runs that may wait', 100_000, 100),
    faults: Faults.default({ max: 3, windowMs: 60_000 }),
  }, { error: (issue) => `expected an agent like { name: calc, component: ./calc.wasm, policy: ./calc.policy.yaml }, got ${describeValue(issue.input)}` })
  .strict();

const Config = z
  .object(
    {
      agents: z
        .array(Agent, { error: required(`the list of agents to serve, like ${EXAMPLE}`, `expected a list of agents like ${EXAMPLE}`) })
        .min(1, { error: `serve at least one agent, like ${EXAMPLE}` })
        .max(MAX_AGENTS, { error: `at most ${MAX_AGENTS} agents per server: split them over several configs` }),
    },
    { error: (issue) => `expected a mapping with the key agents (a list like ${EXAMPLE}), got ${issue.input === null ? 'an empty document' : describeValue(issue.input)}` },
  )
  .strict();

/**
 * Reads and checks the config; paths come back absolute. Files are not opened here: a missing
 * component or policy is reported when the agent is loaded (serveMcp), naming the agent.
 * @throws McpConfigError
 */
export function loadMcpConfig(path: string, kind: 'MCP' | 'serve' = 'MCP'): McpConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new McpConfigError(`cannot read the ${kind} config ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  const document = parseDocument(text, { uniqueKeys: true });
  if (document.errors.length > 0) throw new McpConfigError(`the ${kind} config ${path} is not valid YAML: ${document.errors[0]!.message}`);
  const raw: unknown = document.toJS();
  const parsed = Config.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => `  ${where(issue.path, raw)}: ${issue.code === 'unrecognized_keys' ? unknownKeys(issue.keys, issue.path) : issue.message}`);
    if (issues.length > MAX_LISTED_ISSUES) issues.splice(MAX_LISTED_ISSUES, Infinity, `  … and ${issues.length - MAX_LISTED_ISSUES} more`);
    throw new McpConfigError(`the ${kind} config ${path} is invalid:\n${issues.join('\n')}`);
  }
  const base = dirname(resolve(path));
  const seen = new Map<string, number>();
  const hooks = new Map<string, string>();
  const agents = parsed.data.agents.map((agent, i) => {
    const first = seen.get(agent.name);
    if (first !== undefined) throw new McpConfigError(`the ${kind} config ${path} names agent ${agent.name} twice (agents[${first}] and agents[${i}]): each agent's tools are named after it, so rename one`);
    seen.set(agent.name, i);
    const hooked = agent.on.http === undefined ? undefined : hooks.get(agent.on.http);
    if (hooked !== undefined) throw new McpConfigError(`the config ${path} gives the webhook ${agent.on.http} to two agents (${hooked} and ${agent.name}): give each its own path`);
    if (agent.on.http !== undefined) hooks.set(agent.on.http, agent.name);
    return {
      name: agent.name,
      component: resolve(base, agent.component),
      policy: resolve(base, agent.policy),
      ...(agent.sha256 ? { sha256: agent.sha256 } : {}),
      on: agent.on,
      concurrency: agent.concurrency,
      queue: agent.queue,
      faults: agent.faults,
    };
  });
  return { source: path, agents };
}

/** `agents[1].policy (agent calc)`: the key path, and the agent's name when it has a usable one. */
function where(path: readonly PropertyKey[], raw: unknown): string {
  if (path.length === 0) return '(top level)';
  const at = formatPath(path);
  if (path[0] !== 'agents' || typeof path[1] !== 'number') return at;
  const name = (raw as { agents?: { name?: unknown }[] }).agents?.[path[1]]?.name;
  return typeof name === 'string' && NAME.test(name) ? `${at} (agent ${name})` : at;
}

function unknownKeys(keys: readonly string[], path: readonly PropertyKey[]): string {
  const allowed = path.length === 0 ? 'agents' : AGENT_KEYS.join(', ');
  return `unknown key${keys.length > 1 ? 's' : ''} ${keys.join(', ')}; allowed: ${allowed}${path.length === 0 ? '' : ' (grants and limits belong in the policy file)'}`;
}
