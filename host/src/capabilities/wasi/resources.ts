/**
 * Per-run resource wrappers. preview2-shim's resource classes (streams, pollables, descriptors) are shared
 * by the whole process, and jco's glue accepts a resource only if it is an instance of the class the
 * import object gave it. So each run gets its own classes: every object handed to the guest is a wrapper
 * of this run (its calls are attributed to this run and mediated), holding the shim's object (or one of
 * ICE's own, like a captured stdout) inside. A wrapper has a ledger name (`output-stream#3`), numbered
 * in creation order, so a replay creates the same names in the same order.
 */
import { INTERNAL, type WasiCallRouter } from './router.js';

export interface Wrapper {
  readonly ledgerName: string;
  /** The object doing the work (absent in a replay, where answers come from the ledger). */
  readonly inner: unknown;
}

export type WrapperClass = new (...args: unknown[]) => Wrapper;

/** `OutputStream` → `output-stream`; `blockingWriteAndFlush` → `blocking-write-and-flush`. */
export function kebab(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/gu, '$1-$2').replace(/([A-Z])([A-Z][a-z])/gu, '$1-$2').toLowerCase();
}

export class ResourceTable {
  private next = 0;
  private readonly byShimClass = new Map<unknown, WrapperClass>();
  private readonly byName = new Map<string, WrapperClass>();
  private readonly byLedgerName = new Map<string, Wrapper>();
  private readonly all = new Set<WrapperClass>();

  constructor(private readonly router: WasiCallRouter) {}

  /**
   * The run's class for a resource: `interfaceName` qualifies its calls in the ledger, `methods` are
   * the camelCase method names jco will call, `shimClass` (if any) is what the shim's objects are.
   */
  define(qualified: string, jsName: string, methods: readonly string[], statics: readonly string[], shimClass?: unknown): WrapperClass {
    const existing = this.byName.get(jsName);
    if (existing) {
      if (shimClass !== undefined) this.byShimClass.set(shimClass, existing);
      return existing;
    }
    const resource = kebab(jsName);
    const table = this;
    const router = this.router;
    const Wrapped = class {
      ledgerName!: string;
      inner: unknown;
      constructor(...args: unknown[]) {
        if (args[0] === INTERNAL) {
          this.inner = args[1];
          this.ledgerName = (args[2] as string | undefined) ?? `${resource}#${++table.next}`;
        } else {
          // The guest constructs one (e.g. wasi:http `fields`): a mediated constructor call.
          const made = router.construct(qualified, resource, shimClass, args) as Wrapper;
          this.inner = made.inner;
          this.ledgerName = made.ledgerName;
        }
        table.byLedgerName.set(this.ledgerName, this as Wrapper);
      }
      [Symbol.dispose](): void {
        const inner = this.inner as { [Symbol.dispose]?: () => void } | undefined;
        inner?.[Symbol.dispose]?.();
      }
    };
    Object.defineProperty(Wrapped, 'name', { value: jsName });
    for (const method of methods) {
      Object.defineProperty(Wrapped.prototype, method, {
        value: function (this: Wrapper, ...args: unknown[]) {
          return router.method(qualified, resource, method, this, args);
        },
        writable: false,
      });
    }
    for (const method of statics) {
      Object.defineProperty(Wrapped, method, {
        value: (...args: unknown[]) => router.staticCall(qualified, resource, method, shimClass, args),
      });
    }
    const cls = Wrapped as unknown as WrapperClass;
    this.byName.set(jsName, cls);
    if (shimClass !== undefined) this.byShimClass.set(shimClass, cls);
    this.all.add(cls);
    return cls;
  }

  classNamed(jsName: string): WrapperClass | undefined {
    return this.byName.get(jsName);
  }

  /** Registers an ICE-made inner type (a captured stdout, an empty stdin) as instances of `jsName`. */
  alias(innerClass: unknown, jsName: string): void {
    const cls = this.byName.get(jsName);
    if (!cls) throw new Error(`no resource class ${jsName} to alias`);
    this.byShimClass.set(innerClass, cls);
  }

  isWrapper(value: unknown): value is Wrapper {
    return typeof value === 'object' && value !== null && this.all.has(value.constructor as WrapperClass);
  }

  /** Wraps the shim's (or ICE's) objects found in a result: arrays, tuples and record fields included. */
  wrap(value: unknown, depth = 0): unknown {
    if (value === null || typeof value !== 'object' || depth > 8) return value;
    if (ArrayBuffer.isView(value)) return value;
    const cls = this.byShimClass.get(value.constructor);
    if (cls) return new cls(INTERNAL, value);
    if (Array.isArray(value)) return value.map((item) => this.wrap(item, depth + 1));
    if (Object.getPrototypeOf(value) !== Object.prototype) return value;
    const out: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(value)) out[key] = this.wrap(field, depth + 1);
    return out;
  }

  /** The inner objects for the shim, in arguments: wrappers of this run only. */
  unwrap(value: unknown, depth = 0): unknown {
    if (value === null || typeof value !== 'object' || depth > 8) return value;
    if (this.isWrapper(value)) return value.inner;
    if (ArrayBuffer.isView(value)) return value;
    if (Array.isArray(value)) return value.map((item) => this.unwrap(item, depth + 1));
    if (Object.getPrototypeOf(value) !== Object.prototype) return value;
    const out: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(value)) out[key] = this.unwrap(field, depth + 1);
    return out;
  }

  /** Replay: the object a recorded name stands for, made (without an inner) the first time it is seen. */
  byRecordedName(ledgerName: string): Wrapper {
    const known = this.byLedgerName.get(ledgerName);
    if (known) return known;
    const resource = ledgerName.slice(0, ledgerName.lastIndexOf('#'));
    const cls = [...this.all].find((c) => kebab(c.name) === resource);
    if (!cls) throw new Error(`the ledger names a ${resource} this component cannot have`);
    this.next = Math.max(this.next, Number(ledgerName.slice(ledgerName.lastIndexOf('#') + 1)));
    return new cls(INTERNAL, undefined, ledgerName);
  }
}
