/**
 * Who answers `ask` rules for `ice run`: `--approve all|none` (for scripts: the ledger records
 * `--approve all` / `--approve none` as who answered), or, when neither is given and stdin and stderr are
 * a terminal, a prompt on the terminal, one question at a time. With no terminal and no --approve, every
 * ask is denied (`none`): a run never waits for an answer nobody can give.
 */
import { createInterface } from 'node:readline';
import type { ApprovalRequest } from '../capabilities/define.js';
import type { AskDetail } from '../core/verdict.js';
import { terminalSafe } from '../core/text.js';
import type { Approver } from '../sandbox/host-gateway.js';
import { UsageError } from './args.js';

// Guest- and policy-controlled text is shown on the terminal: controls and bidi overrides escaped.
const safe = (text: string) => terminalSafe(text).slice(0, 300);

export function cliApprover(mode: string | undefined, terminal: { input: NodeJS.ReadableStream & { isTTY?: boolean }; output: NodeJS.WritableStream & { isTTY?: boolean } }): { approve: Approver; name: string } {
  if (mode === 'all') return { approve: () => true, name: '--approve all' };
  if (mode === 'none') return { approve: () => false, name: '--approve none' };
  if (mode !== undefined) throw new UsageError(`ice run: --approve must be all or none, got ${JSON.stringify(mode)}`);
  if (!terminal.input.isTTY || !terminal.output.isTTY) {
    return { approve: () => ({ approved: false, by: 'none', reason: 'no terminal to ask on and no --approve given' }), name: 'none' };
  }
  let queue = Promise.resolve();
  const approve: Approver = (request) => {
    const answer = queue.then(() => prompt(request, terminal));
    queue = answer.then(
      () => undefined,
      () => undefined,
    );
    return answer;
  };
  return { approve, name: 'terminal' };
}

/** Characters of a kv value or http body a prompt shows; the rest is counted, not shown. */
export const PROMPT_DETAIL_CHARS = 200;

/** `value (1234 bytes): "first 200 characters…"`, escaped: what the approver lets through. */
function showDetail(detail: AskDetail): string {
  const chars = Array.from(detail.head);
  const cut = chars.length > PROMPT_DETAIL_CHARS || Buffer.byteLength(detail.head, 'utf8') < detail.bytes;
  const shown = terminalSafe(chars.slice(0, PROMPT_DETAIL_CHARS).join(''));
  const size = `${detail.bytes} byte${detail.bytes === 1 ? '' : 's'}${cut ? `, first ${Math.min(chars.length, PROMPT_DETAIL_CHARS)} characters shown` : ''}`;
  return `${safe(detail.what)} (${size}): "${shown}${cut ? '…' : ''}"`;
}

function prompt(request: ApprovalRequest, terminal: { input: NodeJS.ReadableStream; output: NodeJS.WritableStream }): Promise<{ approved: boolean; by: string }> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: terminal.input, output: terminal.output, terminal: true });
    const question =
      `\nice: ${safe(request.component)} asks: ${safe(request.call)} ${safe(request.summary)}\n` +
      (request.detail ? `     ${showDetail(request.detail)}\n` : '') +
      `     rule ${safe(request.rule)} · no answer in ${Math.round(request.timeoutMs / 1000)} s means no\n` +
      '     allow? [y/N] ';
    const timer = setTimeout(() => {
      rl.close();
    }, request.timeoutMs);
    let answered = false;
    rl.question(question, (text) => {
      answered = true;
      clearTimeout(timer);
      rl.close();
      resolve({ approved: /^\s*y(es)?\s*$/iu.test(text), by: 'terminal' });
    });
    rl.on('close', () => {
      if (!answered) resolve({ approved: false, by: 'terminal' });
    });
  });
}
