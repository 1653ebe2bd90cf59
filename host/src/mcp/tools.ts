/**
 * The MCP tools of loaded agents: every typed export is `<agent>_<function>` (`calc_add`), a function
 * of an exported interface `<agent>_<interface>_<function>` (`calc_geometry_area`): LLM APIs that tools
 * are handed on to accept only `[a-zA-Z0-9_-]{1,64}` (no dots), and WIT names have no `_`, so `_`
 * separates unambiguously (agent names have none either). Each has its parameters' JSON Schema as
 * input and its result's as output; an ICE-world agent's `run`
 * takes `{ input }`; a WASI command's `run` takes `{ args, stdin }`.
 *
 * The schemas are 2020-12 (MCP's default dialect) without the `$schema` keyword. With it, an Ajv of
 * default options (draft-07, meta-schema validation on) refuses to compile them ("no schema with key or
 * ref https://json-schema.org/draft/2020-12/schema"); the SDK's own client validator (Ajv draft-07,
 * `validateSchema: false`, `strict: false`) happens to accept both. That validator ignores `prefixItems`,
 * so it checks a tuple's length but not its elements; a strict draft-07 Ajv refuses the keyword. Draft
 * 2020-12 validators (Ajv2020) compile every schema here in strict mode (test/mcp.test.ts checks both).
 */
import { parametersSchema, resultSchema, type JsonSchema } from '../component/json-schema.js';
import { interfaceShortName } from '../component/export-types.js';
import { signatureText, type TypedFunction } from '../component/wit-types.js';
import { McpConfigError } from './config.js';
import type { Agent } from '../host.js';

export type ToolEntry =
  | { readonly kind: 'call'; readonly agent: Agent; readonly fn: TypedFunction }
  | { readonly kind: 'run'; readonly agent: Agent }
  | { readonly kind: 'command'; readonly agent: Agent };

export interface Tool {
  readonly name: string;
  readonly description: string;
  readonly inputSchema: JsonSchema & { type: 'object' };
  readonly outputSchema?: JsonSchema & { type: 'object' };
}

/** What MCP clients and the LLM APIs behind them accept as a tool name. */
const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/;

function withoutDialect(schema: JsonSchema): JsonSchema {
  const { $schema: _dialect, ...rest } = schema;
  return rest;
}

export function toolsOf(name: string, agent: Agent): { tool: Tool; entry: ToolEntry }[] {
  const tools: { tool: Tool; entry: ToolEntry }[] = [];
  if (agent.implementsRun) {
    tools.push({
      tool: {
        name: `${name}_run`,
        description: `Runs the ICE agent ${name} once with a text input (run: func(input: string) -> result<string, string>), under its policy.`,
        inputSchema: { type: 'object', properties: { input: { type: 'string' } }, required: ['input'], additionalProperties: false },
      },
      entry: { kind: 'run', agent },
    });
  }
  if (agent.commandExport) {
    tools.push({
      tool: {
        name: agent.implementsRun ? `${name}_command` : `${name}_run`,
        description: `Runs the WASI command ${name} once: args follow its policy's grants.wasi.args; stdin is read only when its policy sets grants.wasi.stdin: input; the result is its stdout.`,
        inputSchema: {
          type: 'object',
          properties: { args: { type: 'array', items: { type: 'string' } }, stdin: { type: 'string' } },
          additionalProperties: false,
        },
      },
      entry: { kind: 'command', agent },
    });
  }
  for (const fn of agent.functions) {
    if (agent.implementsRun && fn.name === 'run' && fn.interface === undefined) continue;
    tools.push({
      tool: {
        name: `${name}_${fn.interface === undefined ? fn.func : `${interfaceShortName(fn.interface)}_${fn.func}`}`,
        description: `${fn.docs ? `${fn.docs}\n` : ''}${fn.name}: ${signatureText(fn)}`,
        inputSchema: withoutDialect(parametersSchema(fn)) as Tool['inputSchema'],
        // MCP wants an object: the function's result is its `result` field.
        outputSchema: { type: 'object', properties: { result: withoutDialect(resultSchema(fn)) }, required: ['result'], additionalProperties: false },
      },
      entry: { kind: 'call', agent, fn },
    });
  }
  for (const { tool } of tools) {
    if (!TOOL_NAME.test(tool.name)) {
      throw new McpConfigError(`agent ${name}: tool ${JSON.stringify(tool.name)} is longer than the 64 characters LLM APIs accept for a tool name: use a shorter agent name`);
    }
  }
  return tools;
}
