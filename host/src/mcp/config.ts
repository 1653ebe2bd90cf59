/**
 * `ice mcp --config agents.yaml`: which components are served, each under its own policy, optionally
 * pinned by digest. Paths are relative to the config file. Everything is checked before the server
 * answers anything: a config that names a missing file, a component that is not the pinned one, or two
 * agents of one name stops `ice mcp` with a message that names the agent and the fix.
 *
 *   agents:
 *     - name: calc                     # tools are calc_<function>
 *       component: ./calc.wasm
 *       policy: ./calc.policy.yaml
 *       sha256: "4f1c…"                # optional: refuse to start if the file is not this component
 */
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
const AGENT_KEYS = ['name', 'component', 'policy', 'sha256'];
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
export function loadMcpConfig(path: string): McpConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new McpConfigError(`cannot read the MCP config ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  const document = parseDocument(text, { uniqueKeys: true });
  if (document.errors.length > 0) throw new McpConfigError(`the MCP config ${path} is not valid YAML: ${document.errors[0]!.message}`);
  const raw: unknown = document.toJS();
  const parsed = Config.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => `  ${where(issue.path, raw)}: ${issue.code === 'unrecognized_keys' ? unknownKeys(issue.keys, issue.path) : issue.message}`);
    if (issues.length > MAX_LISTED_ISSUES) issues.splice(MAX_LISTED_ISSUES, Infinity, `  … and ${issues.length - MAX_LISTED_ISSUES} more`);
    throw new McpConfigError(`the MCP config ${path} is invalid:\n${issues.join('\n')}`);
  }
  const base = dirname(resolve(path));
  const seen = new Map<string, number>();
  const agents = parsed.data.agents.map((agent, i) => {
    const first = seen.get(agent.name);
    if (first !== undefined) throw new McpConfigError(`the MCP config ${path} names agent ${agent.name} twice (agents[${first}] and agents[${i}]): each agent's tools are named after it, so rename one`);
    seen.set(agent.name, i);
    return { name: agent.name, component: resolve(base, agent.component), policy: resolve(base, agent.policy), ...(agent.sha256 ? { sha256: agent.sha256 } : {}) };
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
