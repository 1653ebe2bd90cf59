/** `ice call <component.wasm> <function> --policy <file> --args '<json>'`: one governed run of a typed export. */
import { parseArgs } from 'node:util';
import { UsageError, withUsage } from './args.js';
import { EXIT, type Io } from './io.js';
import { readUserFile } from './paths.js';
import { exitCode, HOST_OPTIONS, runHost, summary } from './run.js';
import { CALL_USAGE } from './usage.js';

export async function callCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = withUsage('call', CALL_USAGE, () =>
    parseArgs({ args: argv, options: { ...HOST_OPTIONS, args: { type: 'string' }, 'args-file': { type: 'string' } }, allowPositionals: true, strict: true }),
  );
  if (positionals.length !== 2) {
    throw new UsageError(`ice call: expected a component file and a function name, got ${positionals.length === 0 ? 'neither' : positionals.join(' ')}\nusage: ${CALL_USAGE}`);
  }
  const [component, fn] = positionals as [string, string];
  if (!values.policy) throw new UsageError(`ice call: --policy <file> is required: a call without a policy has no authority to check\nusage: ${CALL_USAGE}`);
  if (values.args !== undefined && values['args-file'] !== undefined) throw new UsageError(`ice call: give --args or --args-file, not both\nusage: ${CALL_USAGE}`);
  const text = values['args-file'] !== undefined ? new TextDecoder().decode(readUserFile('call', '--args-file', values['args-file'])) : (values.args ?? '{}');
  let args: unknown;
  try {
    args = JSON.parse(text);
  } catch (error) {
    const where = values['args-file'] !== undefined ? `--args-file ${values['args-file']}` : '--args';
    throw new UsageError(`ice call: ${where} is not JSON (${error instanceof Error ? error.message : String(error)}): pass an object keyed by parameter name, like --args '{"a": 1, "b": 2}'`);
  }

  const host = await runHost('call', values, io);
  try {
    const agent = await host.load(component, values.policy);
    const result = await agent.call(fn, args);
    if (result.ok) io.stdout(`${result.output}\n`);
    io.stderr(`${summary(result)}\n`);
    return result.ok ? EXIT.ok : exitCode(result);
  } finally {
    host.close();
  }
}
