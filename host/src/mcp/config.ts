/**
 * `ice mcp --config agents.yaml`: which components are served, each under its own policy, optionally
 * pinned by digest. Paths are relative to the config file. Everything is checked before the server
 * answers anything: a config that names a missing file, a component that is not the pinned one, or two
 * agents of one name stops `ice mcp` with a message that names the agent and the fix.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';

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

const Agent = z
  .object({
    name: z.string().regex(NAME, { error: 'use 1 to 32 characters from a-z, 0-9, "-", starting with a letter (tools are named <agent>_<function>, so no "_")' }),
    component: z.string().min(1, { error: 'the path of the component (.wasm), relative to the config file' }),
    policy: z.string().min(1, { error: 'the path of its policy file, relative to the config file' }),
    sha256: z
      .string({ error: 'expected the component\'s sha256 as 64 hex digits, quoted (sha256: "4f1c…")' })
      .regex(/^[0-9a-fA-F]{64}$/, { error: 'expected the component\'s sha256 as 64 hex digits, quoted (sha256: "4f1c…")' })
      .transform((s) => s.toLowerCase())
      .optional(),
  })
  .strict();

const Config = z
  .object({ agents: z.array(Agent, { error: 'expected a list of agents like [{ name: calc, component: ./calc.wasm, policy: ./calc.policy.yaml }]' }).min(1, { error: 'serve at least one agent' }).max(64) })
  .strict();

export function loadMcpConfig(path: string): McpConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new McpConfigError(`cannot read the MCP config ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  const document = parseDocument(text, { uniqueKeys: true });
  if (document.errors.length > 0) throw new McpConfigError(`the MCP config ${path} is not valid YAML: ${document.errors[0]!.message}`);
  const parsed = Config.safeParse(document.toJS());
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(top level)'}: ${i.code === 'unrecognized_keys' ? `unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.join(', ')}; allowed: agents, and per agent name, component, policy, sha256` : i.message}`);
    throw new McpConfigError(`the MCP config ${path} is invalid:\n${issues.join('\n')}`);
  }
  const base = dirname(resolve(path));
  const seen = new Set<string>();
  const agents = parsed.data.agents.map((agent, i) => {
    if (seen.has(agent.name)) throw new McpConfigError(`the MCP config ${path} names agent ${agent.name} twice (agents[${i}]): each agent's tools are named after it`);
    seen.add(agent.name);
    return { name: agent.name, component: resolve(base, agent.component), policy: resolve(base, agent.policy), ...(agent.sha256 ? { sha256: agent.sha256 } : {}) };
  });
  return { source: path, agents };
}
