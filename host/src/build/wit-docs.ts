/**
 * The doc comments of one WIT file, in wit-component's `package-docs` model (wit-parser's
 * metadata.rs, format version 1), read with a small lexer instead of a WIT parser.
 *
 * Why: jco 1.35's componentEmbed keeps no docs (its `component-type` section encodes the world alone,
 * without the `package-docs` section a WIT package encoding has), so the build collects them from the
 * source. Only names and comments are read; the WIT itself is validated by componentEmbed, which
 * always runs on the same text. Items gated `@unstable` are left out: the build does not enable them.
 *
 * Doc text follows wit-parser: each `///` line without its slashes, trimmed, plus "\n"; each line of a
 * `/** … *\/` block as written, plus "\n"; other comments ignored.
 */

export interface FunctionDocs {
  docs?: string;
}

export interface TypeDocs {
  docs?: string;
  /** Record fields, variant and enum cases, flags: name → docs. */
  items?: Record<string, string>;
}

export interface InterfaceDocs {
  docs?: string;
  /** Resource functions are named as in the component model: `[constructor]r`, `[method]r.f`, `[static]r.f`. */
  funcs?: Record<string, FunctionDocs>;
  types?: Record<string, TypeDocs>;
}

export interface WorldDocs {
  docs?: string;
  /** Named inline interfaces the world imports (`import x: interface { … }`). */
  interfaces?: Record<string, InterfaceDocs>;
  types?: Record<string, TypeDocs>;
  /** Functions the world imports. */
  funcs?: Record<string, FunctionDocs>;
  interface_exports?: Record<string, InterfaceDocs>;
  func_exports?: Record<string, FunctionDocs>;
}

export interface PackageDocs {
  /** The package the docs belong to (`example:calc@0.1.0`); newer wit-component readers look it up by this. */
  package?: string;
  docs?: string;
  worlds?: Record<string, WorldDocs>;
  interfaces?: Record<string, InterfaceDocs>;
}

export interface WitFileDocs {
  /** The file's `package <name>;` statement, and where it is (to remove it when files are joined). */
  package?: { name: string; start: number; end: number };
  /** Every world the file declares, documented or not. */
  worlds: string[];
  docs: PackageDocs;
}

export function parseWitDocs(text: string): WitFileDocs {
  return new Parser(lex(text)).file();
}

/** `package-docs` payload bytes: the format version, then the JSON. */
export function encodePackageDocs(docs: PackageDocs): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(docs));
  const out = new Uint8Array(1 + json.length);
  out[0] = PACKAGE_DOCS_VERSION;
  out.set(json, 1);
  return out;
}

export const PACKAGE_DOCS_VERSION = 1;

/** Drops undefined fields and empty maps, recursively, as wit-component leaves out empty entries. */
export function pruneDocs<T extends object>(value: T): T | undefined {
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    if (field === undefined) continue;
    if (typeof field === 'object' && field !== null) {
      const pruned = pruneDocs(field as object);
      if (pruned !== undefined) out[key] = pruned;
    } else {
      out[key] = field;
    }
  }
  return Object.keys(out).length === 0 ? undefined : (out as T);
}

interface Token {
  text: string;
  start: number;
  end: number;
  /** The comments between the previous token and this one. */
  comments: string[];
}

const WORD = /%?[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*/y;
const OPENERS = new Set(['(', '{', '<']);
const CLOSERS = new Set([')', '}', '>']);

function lex(text: string): Token[] {
  const tokens: Token[] = [];
  let comments: string[] = [];
  const push = (start: number, end: number): void => {
    tokens.push({ text: text.slice(start, end), start, end, comments });
    comments = [];
  };
  let at = 0;
  while (at < text.length) {
    if (/\s/.test(text.charAt(at))) {
      at++;
    } else if (text.startsWith('//', at)) {
      const newline = text.indexOf('\n', at);
      const end = newline < 0 ? text.length : newline;
      comments.push(text.slice(at, end));
      at = end;
    } else if (text.startsWith('/*', at)) {
      // Block comments nest in WIT.
      let depth = 0;
      let end = at;
      while (end < text.length) {
        if (text.startsWith('/*', end)) {
          depth++;
          end += 2;
        } else if (text.startsWith('*/', end)) {
          depth--;
          end += 2;
          if (depth === 0) break;
        } else {
          end++;
        }
      }
      comments.push(text.slice(at, end));
      at = end;
    } else {
      WORD.lastIndex = at;
      const word = WORD.exec(text);
      const end = word ? at + word[0].length : text.startsWith('->', at) ? at + 2 : at + 1;
      push(at, end);
      at = end;
    }
  }
  push(text.length, text.length);
  return tokens;
}

function docText(comments: readonly string[]): string | undefined {
  let docs: string | undefined;
  for (const comment of comments) {
    if (comment.startsWith('///')) {
      docs = `${docs ?? ''}${comment.slice(3).replace(/^\/+/, '').trim()}\n`;
    } else if (comment.startsWith('/**') && comment.length >= 5) {
      // `/**/` is an empty plain comment, not a doc comment.
      const lines = comment.slice(3, -2).split('\n');
      if (lines.at(-1) === '') lines.pop();
      docs = `${docs ?? ''}${lines.map((line) => `${line.replace(/\r$/, '')}\n`).join('')}`;
    }
  }
  return docs;
}

const TYPE_WITH_ITEMS = new Set(['record', 'variant', 'enum', 'flags']);

class Parser {
  private at = 0;

  constructor(private readonly tokens: readonly Token[]) {}

  file(): WitFileDocs {
    const result: WitFileDocs = { worlds: [], docs: {} };
    const worlds: Record<string, WorldDocs> = {};
    const interfaces: Record<string, InterfaceDocs> = {};
    while (!this.eof()) {
      const before = this.at;
      const docs = this.docsHere();
      const start = this.token().start;
      const { unstable } = this.gates();
      const keyword = this.next().text;
      if (keyword === 'package') {
        const name = this.until([';', '{']);
        if (this.peek() === '{') {
          // A nested package is another package: its docs are not this one's.
          this.skipGroup();
        } else {
          const end = this.next().end;
          result.package = { name, start, end };
          result.docs.docs = docs;
        }
      } else if (keyword === 'interface') {
        const name = this.id();
        const body = this.interfaceBody(docs);
        if (!unstable) interfaces[name] = body;
      } else if (keyword === 'world') {
        const name = this.id();
        result.worlds.push(name);
        const body = this.worldBody(docs);
        if (!unstable) worlds[name] = body;
      } else {
        // `use` and anything unknown.
        this.skipItem();
      }
      if (this.at === before) this.next();
    }
    result.docs.worlds = worlds;
    result.docs.interfaces = interfaces;
    return result;
  }

  private interfaceBody(docs: string | undefined): InterfaceDocs {
    const funcs: Record<string, FunctionDocs> = {};
    const types: Record<string, TypeDocs> = {};
    this.items(() => {
      const itemDocs = this.docsHere();
      const { unstable } = this.gates();
      const keyword = this.peek();
      if (keyword === 'use') {
        this.skipItem();
      } else if (keyword === 'type' || keyword === 'resource' || TYPE_WITH_ITEMS.has(keyword)) {
        this.typedef(itemDocs, unstable ? {} : types, unstable ? {} : funcs);
      } else {
        const name = this.id();
        if (this.peek() !== ':') return this.skipItem();
        this.skipItem();
        if (!unstable) funcs[name] = { docs: itemDocs };
      }
    });
    return { docs, funcs, types };
  }

  private worldBody(docs: string | undefined): WorldDocs {
    const world: Required<Omit<WorldDocs, 'docs'>> = { interfaces: {}, types: {}, funcs: {}, interface_exports: {}, func_exports: {} };
    this.items(() => {
      const itemDocs = this.docsHere();
      const { unstable } = this.gates();
      const keyword = this.peek();
      if (keyword === 'import' || keyword === 'export') {
        this.next();
        if (!this.namedItem()) return this.skipItem();
        const name = this.id();
        this.next();
        const imported = keyword === 'import';
        if (this.peek() === 'interface') {
          this.next();
          const body = this.interfaceBody(itemDocs);
          if (!unstable) (imported ? world.interfaces : world.interface_exports)[name] = body;
        } else {
          this.skipItem();
          if (!unstable) (imported ? world.funcs : world.func_exports)[name] = { docs: itemDocs };
        }
      } else if (keyword === 'type' || keyword === 'resource' || TYPE_WITH_ITEMS.has(keyword)) {
        // World-level resources' functions have nowhere to go in the model: dropped, as upstream.
        this.typedef(itemDocs, unstable ? {} : world.types, {});
      } else {
        // `use`, `include … [with { … }];`
        this.skipItem();
      }
    });
    return { docs, ...world };
  }

  /** At `type|record|variant|enum|flags|resource <name>`. */
  private typedef(docs: string | undefined, types: Record<string, TypeDocs>, funcs: Record<string, FunctionDocs>): void {
    const keyword = this.next().text;
    const name = this.id();
    if (TYPE_WITH_ITEMS.has(keyword)) {
      const items: Record<string, string> = {};
      this.items(() => {
        const itemDocs = this.docsHere();
        const item = this.id();
        if (itemDocs !== undefined) items[item] = itemDocs;
        this.skipMember();
      });
      types[name] = { docs, items };
    } else if (keyword === 'resource' && this.peek() === '{') {
      types[name] = { docs };
      this.items(() => {
        const fnDocs = this.docsHere();
        const { unstable } = this.gates();
        if (this.peek() === 'constructor') {
          this.skipItem();
          if (!unstable) funcs[`[constructor]${name}`] = { docs: fnDocs };
          return;
        }
        const fn = this.id();
        this.next();
        const kind = this.peek() === 'static' ? 'static' : 'method';
        this.skipItem();
        if (!unstable) funcs[`[${kind}]${name}.${fn}`] = { docs: fnDocs };
      });
    } else {
      types[name] = { docs };
      this.skipItem();
    }
  }

  /** `{ item* }`: calls `item` until the closing brace, making progress even on input it does not know. */
  private items(item: () => void): void {
    if (this.peek() !== '{') return this.skipItem();
    this.next();
    while (!this.eof() && this.peek() !== '}') {
      const before = this.at;
      item();
      if (this.at === before) this.next();
    }
    this.next();
  }

  /** `name: func…`, `name: async func…` or `name: interface {…}`, not a path like `ns:pkg/iface`. */
  private namedItem(): boolean {
    const kind = this.peek(2);
    return this.peek(1) === ':' && (kind === 'func' || kind === 'async' || kind === 'interface') && this.peek(3) !== '/';
  }

  /** `@since(…)`, `@unstable(…)`, `@deprecated(…)`. */
  private gates(): { unstable: boolean } {
    let unstable = false;
    while (this.peek() === '@') {
      this.next();
      if (this.next().text === 'unstable') unstable = true;
      if (this.peek() === '(') this.skipGroup();
    }
    return { unstable };
  }

  /** Skips through the next `;` or a `{…}` group at this level, stopping before an unmatched `}`. */
  private skipItem(): void {
    while (!this.eof()) {
      const text = this.peek();
      if (text === ';') {
        this.next();
        return;
      }
      if (text === '}') return;
      if (text === '{') {
        this.skipGroup();
        if (this.peek() === ';') this.next();
        return;
      }
      if (OPENERS.has(text)) this.skipGroup();
      else this.next();
    }
  }

  /** Skips a record field or case: through its `,`, or up to the closing `}`. */
  private skipMember(): void {
    while (!this.eof()) {
      const text = this.peek();
      if (text === ',') {
        this.next();
        return;
      }
      if (text === '}') return;
      if (OPENERS.has(text)) this.skipGroup();
      else this.next();
    }
  }

  /** Skips a balanced group from its opening bracket. */
  private skipGroup(): void {
    let depth = 0;
    while (!this.eof()) {
      const text = this.next().text;
      if (OPENERS.has(text)) depth++;
      else if (CLOSERS.has(text) && --depth <= 0) return;
    }
  }

  /** The tokens up to (not including) one of `stops`, joined. */
  private until(stops: readonly string[]): string {
    let text = '';
    while (!this.eof() && !stops.includes(this.peek())) text += this.next().text;
    return text;
  }

  private id(): string {
    const text = this.next().text;
    return text.startsWith('%') ? text.slice(1) : text;
  }

  private docsHere(): string | undefined {
    return docText(this.token().comments);
  }

  private token(offset = 0): Token {
    return this.tokens[Math.min(this.at + offset, this.tokens.length - 1)] as Token;
  }

  private peek(offset = 0): string {
    return this.token(offset).text;
  }

  private next(): Token {
    const token = this.token();
    if (this.at < this.tokens.length - 1) this.at++;
    return token;
  }

  private eof(): boolean {
    return this.at >= this.tokens.length - 1;
  }
}
