/**
 * The compiled policy: the only form the kernel and the capabilities read at call time. Everything here
 * is decided at load (patterns are already typed matchers, defaults are filled in), so a call-time check
 * is a field read or a `firstMatch`, never a parse. Which grants it holds, and their types, is the
 * capability registry's (capabilities/policy.ts): this layer knows the shape every policy shares.
 */

export type Capture = 'full' | 'digest';

/**
 * One key or kind pattern, parsed once at load. `kind` says how `text` is compared, so a pattern is never
 * interpreted as a glob at call time (Deno's typed wildcards rather than a regex built from user text).
 */
export interface Matcher {
  /** Rule id for the ledger and for denial hints, e.g. `grants.kv.read[1]`. */
  readonly rule: string;
  /** The pattern as written in the policy. */
  readonly pattern: string;
  readonly kind: 'any' | 'prefix' | 'exact';
  /** The exact key, or the prefix before the trailing `*` (`''` for `any`). */
  readonly text: string;
  test(value: string): boolean;
}

/** An interface set to `deny`: components importing it load, and every call is denied under `rule`. */
export interface Denied {
  readonly mode: 'deny';
  /** `grants.<interface>`. */
  readonly rule: string;
}

/** What bounds one run (policy `limits`). */
export interface RunLimits {
  /** Units of guest work: one per function entry, function exit and loop iteration. */
  readonly fuel: number;
  /** Wall clock: a worker is terminated at it; a run on the calling thread is stopped by its meter (sandbox/fuel.ts). */
  readonly timeoutMs: number;
  /** The maximum of every linear memory the component defines. */
  readonly memoryMiB: number;
  /** The run's ok output or err message, in UTF-8 bytes. */
  readonly maxOutputBytes: number;
  /**
   * UTF-8 bytes of ledger records one run may append, its run-start included; a call whose record would
   * pass it gets `limit` (a compact record, from a fixed reserve kept with the run-end: ledger/budget.ts).
   */
  readonly maxLedgerBytes: number;
  /**
   * Approvals one run may ask for (calls and redirect hops together). The run's deadline pauses while a
   * human answers, so without this bound a guest could keep a run, and a human, busy indefinitely.
   */
  readonly maxAsks: number;
}

/** A validated policy with every default filled in: plain JSON data (what the ledger records). */
export interface PolicyDocument {
  readonly version: 1;
  readonly component: string;
  /** The only component this policy applies to (sha256 hex), when pinned. */
  readonly sha256?: string;
  readonly audit: { readonly capture: Capture; readonly maxCaptureBytes: number };
  readonly limits: RunLimits;
  /** `grants.<name>`: `deny` or the capability's settings, as its schema normalized them. */
  readonly grants: { readonly [name: string]: unknown };
}

export interface CompiledPolicy<Grants = { readonly [name: string]: unknown }> {
  /** The component's name in the ledger; also its kv namespace. */
  readonly component: string;
  /** `sha256:` — the only component (by digest) this policy may be loaded with. */
  readonly pin?: string;
  readonly capture: Capture;
  /** audit.maxCaptureBytes: larger values are recorded as digest and size. */
  readonly maxCaptureBytes: number;
  /** limits.*, defaults filled in. */
  readonly limits: RunLimits;
  /** An absent key: the capability is not granted at all (a component importing it is refused at load). */
  readonly grants: Grants;
  /**
   * The normalized policy (defaults filled in) as plain JSON data: what was enforced. It goes into the
   * ledger's run-start record, and it is what crosses to a worker thread, where the policy is compiled
   * again from it (matchers hold closures, which cannot be cloned).
   */
  readonly document: PolicyDocument;
  /** sha256 hex of the canonical JSON (sorted keys) of `document`: the same policy in YAML or JSON has the same digest. */
  readonly digest: string;
  /** The file path, or `<inline>`. */
  readonly source: string;
}
