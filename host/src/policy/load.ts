/**
 * Policy text → plain data. YAML and JSON are read here, with the checks a generic parser would skip:
 * duplicate keys are errors (a later `kv:` could silently replace an earlier one), YAML tags are refused
 * (a policy is plain data), and every syntax error carries its line:column. Validation and compiling
 * are the registry's (capabilities/policy.ts), which knows the grants.
 */
import { pathProblem } from '../core/path-problem.js';
import { readFileSync, statSync } from 'node:fs';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node as YamlNode } from 'yaml';
import { PolicyError, formatPath, messages, type PolicyIssue } from './errors.js';

export type PolicyFormat = 'yaml' | 'json';

/** Policies are small; a bigger file is a mistake (or an attack on the parser), refused before parsing. */
export const MAX_POLICY_BYTES = 1024 * 1024;

/** Reads a policy file as text: bounded in size, valid UTF-8, or a PolicyError naming the file. */
export function readPolicyFile(path: string): string {
  let bytes: Buffer;
  try {
    const size = statSync(path).size;
    if (size > MAX_POLICY_BYTES) throw new PolicyError(path, [{ path: '', message: messages.tooLarge(size, MAX_POLICY_BYTES) }]);
    bytes = readFileSync(path);
  } catch (error) {
    if (error instanceof PolicyError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new PolicyError(path, [{ path: '', message: 'file not found' }], messages.fileNotFound(path));
    }
    if (code === 'EISDIR') throw new PolicyError(path, [{ path: '', message: 'it is a directory' }], messages.fileIsDirectory(path));
    const reason = pathProblem(error);
    throw new PolicyError(path, [{ path: '', message: reason }], messages.fileUnreadable(path, reason));
  }
  try {
    // fatal: a policy with invalid UTF-8 would otherwise be read with U+FFFD where a key used to be.
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new PolicyError(path, [{ path: '', message: 'the file is not valid UTF-8' }]);
  }
}

/**
 * Text → plain data (not yet validated). The format is `format` if given, else `.json` / `.yaml` / `.yml`
 * in `source`, else JSON when the text starts with `{`, else YAML.
 */
export function parsePolicyData(text: string, source: string, format?: PolicyFormat): unknown {
  const fail = (issues: PolicyIssue[]): never => {
    throw new PolicyError(source, issues);
  };
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_POLICY_BYTES) fail([{ path: '', message: messages.tooLarge(bytes, MAX_POLICY_BYTES) }]);
  if (text.trim() === '') fail([{ path: '', message: messages.emptyPolicy() }]);
  const chosen = format ?? detectFormat(source, text);
  let data: unknown;
  try {
    data = chosen === 'json' ? parseJson(text, fail) : parseYaml(text, fail);
  } catch (error) {
    // Deep nesting can exhaust the stack in a parser or in the duplicate-key walk: still a user error.
    if (error instanceof RangeError) fail([{ path: '', message: messages.tooDeep() }]);
    throw error;
  }
  // A YAML file holding only comments is as empty as a blank one.
  if (data === null || data === undefined) fail([{ path: '', message: messages.emptyPolicy() }]);
  return data;
}

function detectFormat(source: string, text: string): PolicyFormat {
  if (/\.json$/i.test(source)) return 'json';
  if (/\.ya?ml$/i.test(source)) return 'yaml';
  return text.trimStart().startsWith('{') ? 'json' : 'yaml';
}

type Fail = (issues: PolicyIssue[]) => never;

function parseYaml(text: string, fail: Fail): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    // Duplicates are found by our own walk, which can name the key path and both positions.
    uniqueKeys: false,
    // Only the YAML 1.2 core types; `!!binary`, `!!set`, `!!timestamp` would produce non-JSON values.
    schema: 'core',
    resolveKnownTags: false,
  });
  const position = (offset: number): string => {
    const { line, col } = lineCounter.linePos(offset);
    return `${line}:${col}`;
  };
  const problems: PolicyIssue[] = [];
  // The yaml package reports its own stack overflow on deep nesting as a syntax error at some column.
  if (doc.errors.some((error) => /call stack/i.test(error.message))) fail([{ path: '', message: messages.tooDeep() }]);
  // After the first few, YAML errors are mostly echoes of the first one.
  for (const error of doc.errors.slice(0, 3)) {
    problems.push({ path: position(error.pos[0]), message: messages.yamlSyntax(error.message) });
  }
  for (const warning of doc.warnings) {
    const tag = /^Unresolved tag: (.*)$/.exec(warning.message);
    problems.push({
      path: position(warning.pos[0]),
      message: tag?.[1] !== undefined ? messages.yamlTag(tag[1].replace(/^tag:yaml.org,2002:/, "!!")) : messages.yamlWarning(warning.message),
    });
  }
  if (problems.length > 0) fail(problems);
  findYamlDuplicateKeys(doc.contents, [], position, problems);
  if (problems.length > 0) fail(problems);
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    return fail([{ path: '', message: messages.yamlWarning(error instanceof Error ? error.message : String(error)) }]);
  }
}

function findYamlDuplicateKeys(
  node: unknown,
  path: readonly PropertyKey[],
  position: (offset: number) => string,
  out: PolicyIssue[],
): void {
  if (isMap(node)) {
    const seen = new Map<string, number>();
    for (const pair of node.items) {
      const key = pair.key;
      // Keys are compared as toJS will store them: `1` and "1" become the same property.
      const name = isScalar(key) ? String(key.value) : String(key);
      const offset = (key as YamlNode | null)?.range?.[0] ?? 0;
      const first = seen.get(name);
      if (first === undefined) seen.set(name, offset);
      else out.push({ path: formatPath([...path, name]), message: messages.duplicateKey(position(offset), position(first)) });
      findYamlDuplicateKeys(pair.value, [...path, name], position, out);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, index) => findYamlDuplicateKeys(item, [...path, index], position, out));
  }
}

function parseJson(text: string, fail: Fail): unknown {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // V8: "… in JSON at position 12" (newer versions add "(line 1 column 13)"); we give line:column.
    const at = /\s+in JSON at position (\d+)(?: \(line \d+ column \d+\))?/.exec(message);
    if (at?.[1] !== undefined) {
      fail([{ path: lineColumn(text, Number(at[1])), message: messages.jsonSyntax(message.replace(at[0], '')) }]);
    }
    if (/Unexpected end of JSON input/.test(message)) {
      fail([{ path: lineColumn(text, text.length), message: messages.jsonSyntax('unexpected end of input') }]);
    }
    fail([{ path: '', message: messages.jsonSyntax(message) }]);
  }
  // JSON.parse keeps the last of duplicate keys without a word; the policy must not.
  const problems: PolicyIssue[] = [];
  findJsonDuplicateKeys(text, problems);
  if (problems.length > 0) fail(problems);
  return data;
}

function lineColumn(text: string, offset: number): string {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return `${line}:${offset - lineStart + 1}`;
}

/** A scan over text JSON.parse has already accepted, so it needs no error handling of its own. */
function findJsonDuplicateKeys(text: string, out: PolicyIssue[]): void {
  let i = 0;
  const skipSpace = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text.charAt(i))) i++;
  };
  const readString = (): string => {
    const start = i++;
    while (text.charAt(i) !== '"') i += text.charAt(i) === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const readValue = (path: readonly PropertyKey[]): void => {
    skipSpace();
    const c = text.charAt(i);
    if (c === '{') {
      i++;
      const seen = new Map<string, number>();
      skipSpace();
      if (text.charAt(i) === '}') {
        i++;
        return;
      }
      for (;;) {
        skipSpace();
        const offset = i;
        const key = readString();
        skipSpace();
        i++; // ':'
        const first = seen.get(key);
        if (first === undefined) seen.set(key, offset);
        else out.push({ path: formatPath([...path, key]), message: messages.duplicateKey(lineColumn(text, offset), lineColumn(text, first)) });
        readValue([...path, key]);
        skipSpace();
        if (text.charAt(i++) !== ',') return;
      }
    } else if (c === '[') {
      i++;
      skipSpace();
      if (text.charAt(i) === ']') {
        i++;
        return;
      }
      for (let index = 0; ; index++) {
        readValue([...path, index]);
        skipSpace();
        if (text.charAt(i++) !== ',') return;
      }
    } else if (c === '"') {
      readString();
    } else {
      while (i < text.length && !',]} \t\n\r'.includes(text.charAt(i))) i++;
    }
  };
  readValue([]);
}
