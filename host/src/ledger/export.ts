/**
 * A run exported as JSON lines (`ice audit export <run> --format jsonl`) and the offline check of such
 * a file (`ice audit verify --file`).
 *
 * Each line is exactly a stored row's body — the bytes whose SHA-256 is its hash: a record, or a batch
 * of calls (ledger v2) — in seq order, so the file is checked without the database: every hash is recomputed from its line and the
 * chain, seq order, shapes and run-end counts are checked as `verifyRun` does for a stored run.
 *
 * What a file alone cannot show: the run-start's link to the previous run (that run-start is not in
 * the file), and whether the file is the run at all — anyone can write a self-consistent chain. The
 * last line's hash is the run's ledger root: compare it with the root the run reported.
 */
import { BATCH_TYPE, KEYED_CHAIN, recordHasher, storedRecords, type LedgerRecord, type StoredBatch, type StoredRecord } from './records.js';
import { prevMismatchReason, verifyRun } from './verify.js';

/** The export of a run's records (in seq order, as `LedgerStore.readRun` returns them). */
export function exportJsonl(records: readonly StoredRecord[]): string {
  let text = '';
  let batch: StoredBatch | undefined;
  for (const r of records) {
    // The calls of a batch row are one line: the batch body, the bytes its hash covers.
    if (r.batch !== undefined) {
      if (r.batch !== batch) text += `${r.batch.body}\n`;
      batch = r.batch;
      continue;
    }
    text += `${r.body}\n`;
  }
  return text;
}

/** The text is not an export (empty, not JSON lines, not records, or records of more than one run). */
export class ExportFormatError extends Error {
  override readonly name = 'ExportFormatError';
  /** 1-based line of the problem; 0 for the whole file. */
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The records of an export, each with its hash computed from its line. Throws `ExportFormatError` for
 * a text that is not an export. A final newline is optional; every other line must be one record.
 */
export function parseExport(text: string, key?: Buffer): StoredRecord[] {
  if (text === '') throw new ExportFormatError(0, 'the file is empty');
  const lines = (text.endsWith('\n') ? text.slice(0, -1) : text).split('\n');
  let run: string | undefined;
  let hash = recordHasher(undefined);
  return lines.flatMap((body, index) => {
    const record = parseRecordLine(body, index + 1);
    if (run === undefined && record.type === 'run-start' && record.chain === KEYED_CHAIN && key !== undefined) hash = recordHasher(key);
    run ??= record.run;
    if (record.run !== run) {
      throw new ExportFormatError(index + 1, `a record of run ${record.run} in an export of run ${run} (an export holds one run)`);
    }
    const hashed = hash(body);
    return (record as { type: string }).type === BATCH_TYPE ? storedRecords(BATCH_TYPE, hashed, body) : [{ hash: hashed, body, record }];
  });
}

function parseRecordLine(body: string, line: number): LedgerRecord {
  if (body === '') throw new ExportFormatError(line, 'empty line (an export has one record per line)');
  if (body.endsWith('\r')) {
    // Converted line endings change every hash; say so instead of reporting a broken chain.
    throw new ExportFormatError(line, 'the line ends with CR: its line endings were converted, so no record can match its hash');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new ExportFormatError(line, 'the line is not valid JSON');
  }
  const fields = parsed as { run?: unknown; type?: unknown } | null;
  if (typeof parsed !== 'object' || fields === null || Array.isArray(parsed) || typeof fields.run !== 'string' || typeof fields.type !== 'string') {
    throw new ExportFormatError(line, 'the line is not a ledger record (a JSON object with "run" and "type")');
  }
  return parsed as LedgerRecord;
}

export type ExportVerifyResult =
  /** `root`: the last line's hash, the run's ledger root. */
  | { ok: true; run: string; records: number; root: string; /** false: a plain SHA-256 chain (written before ledger keys). */ keyed: boolean }
  | { ok: false; run: string; seq: number; reason: string }
  /** Not an export at all: `line` as in `ExportFormatError`. */
  | { ok: false; line: number; reason: string };

/**
 * Verifies an exported run alone. Reports the first bad record like `verifyRun`, except that an edited
 * line is reported at its own seq: in a store the hash column still holds the original hash, but in a
 * file the only trace of it is the next record's prev, so `verifyRun` would see the break one record later.
 */
export function verifyExport(text: string, options: { key?: Buffer } = {}): ExportVerifyResult {
  let records: StoredRecord[];
  try {
    records = parseExport(text, options.key);
  } catch (error) {
    if (error instanceof ExportFormatError) return { ok: false, line: error.line, reason: error.message };
    throw error;
  }
  const run = records[0]!.record.run;
  const result = verifyRun(records, { run, ...(options.key ? { key: options.key } : {}) });
  if (!result.ok) {
    return result.reason === prevMismatchReason(result.seq) ? { ...result, ...blameEditedLine(records, result.seq) } : result;
  }
  return { ok: true, run, records: result.records, root: records[records.length - 1]!.hash, keyed: result.unkeyed === undefined };
}

/**
 * When the chain breaks at `seq` because its prev is not the hash of the line before, one of the two
 * lines was changed. If `seq`'s line still hashes to what its own successor records, it is intact and the
 * line before it was edited; if its successor's link is broken too, the single change that explains
 * both is an edit of `seq`'s prev. A run-end has no successor: either is possible, and the reason says so.
 * A batch line (ledger v2) is one line: an edit of any call in it is reported at the batch's first seq.
 */
function blameEditedLine(records: readonly StoredRecord[], seq: number): { seq: number; reason?: string } {
  const lines = linesOf(records);
  const at = lines.findIndex((line) => line.first === seq);
  if (at < 1) return { seq };
  const last = at === lines.length - 1;
  if (!last && lines[at + 1]!.prev !== lines[at]!.hash) return { seq };
  const before = lines[at - 1]!;
  const what = before.first === before.last ? 'the line' : `the batch of seq ${before.first}–${before.last}`;
  const changed = last ? `it was changed, or the prev of seq ${seq} was` : before.first === before.last ? 'it was changed' : 'a record in it was changed';
  return { seq: before.first, reason: `${what} does not hash to the prev recorded by seq ${seq}: ${changed}` };
}

/** The lines of an export as the chain links them: first and last seq, hash, and the prev it names. */
function linesOf(records: readonly StoredRecord[]): Array<{ first: number; last: number; hash: string; prev: unknown }> {
  const lines: Array<{ first: number; last: number; hash: string; prev: unknown }> = [];
  for (const r of records) {
    if (r.batch !== undefined && lines.at(-1)?.hash === r.batch.hash && lines.at(-1)!.first === r.batch.first) continue;
    const { seq, prev } = r.record as { seq: number; prev: unknown };
    lines.push(r.batch ? { first: r.batch.first, last: r.batch.last, hash: r.batch.hash, prev } : { first: seq, last: seq, hash: r.hash, prev });
  }
  return lines;
}
