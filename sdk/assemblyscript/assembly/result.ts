// The value types of the SDK: Result<T, E>, Status and IceError (the WIT `error` variant).

/** Which case of the WIT `error` variant the host returned (the discriminant order of types.wit). */
export enum ErrorKind {
  /** The component's policy does not allow this call. */
  Denied = 0,
  /** A budget in the policy was exceeded (call count, size, bytes). */
  Limit = 1,
  /** The arguments are malformed for this call. */
  Invalid = 2,
  /** The call was allowed but the host could not perform it. */
  Failed = 3,
}

/** Why the host refused or could not complete an import call. */
export class IceError {
  constructor(
    /** The variant case. */
    public code: ErrorKind,
    /** The host's explanation (for `denied`: the rule and how to allow the call). */
    public message: string,
  ) {}

  /** The variant case as a word: "denied" | "limit" | "invalid" | "failed". */
  get kind(): string {
    switch (this.code) {
      case ErrorKind.Denied: return "denied";
      case ErrorKind.Limit: return "limit";
      case ErrorKind.Invalid: return "invalid";
      default: return "failed";
    }
  }

  get isDenied(): bool { return this.code == ErrorKind.Denied; }
  get isLimit(): bool { return this.code == ErrorKind.Limit; }
  get isInvalid(): bool { return this.code == ErrorKind.Invalid; }
  get isFailed(): bool { return this.code == ErrorKind.Failed; }

  /** "<kind>: <message>". */
  toString(): string {
    return this.kind + ": " + this.message;
  }
}

// The zero value of any type, so a Result can leave its unused side empty. A reference side is a null
// pointer that is never handed out: the accessors below check isOk first.
// @ts-ignore: decorator
@inline function zeroOf<T>(): T {
  if (isReference<T>()) return changetype<T>(<usize>0);
  // @ts-ignore: cast
  return <T>0;
}

/**
 * The outcome of an operation: `ok(value)` or `err(error)`. Every import that returns a value gives a
 * `Result<T, IceError>`; the guest's `run` returns a `Result<string, string>`.
 * Reading `value` of an err or `error` of an ok aborts the run (the message is logged, then it traps).
 */
export class Result<T, E> {
  constructor(
    /** true for ok, false for err. */
    public readonly isOk: bool,
    private _value: T,
    private _error: E,
  ) {}

  static ok<T, E>(value: T): Result<T, E> {
    return new Result<T, E>(true, value, zeroOf<E>());
  }

  static err<T, E>(error: E): Result<T, E> {
    return new Result<T, E>(false, zeroOf<T>(), error);
  }

  get isErr(): bool {
    return !this.isOk;
  }

  /** The ok value; aborts if this is an err. */
  get value(): T {
    if (!this.isOk) throw new Error("Result.value read on an err result");
    return this._value;
  }

  /** The error; aborts if this is ok. */
  get error(): E {
    if (this.isOk) throw new Error("Result.error read on an ok result");
    return this._error;
  }

  /** The ok value, or `fallback` for an err. */
  unwrapOr(fallback: T): T {
    return this.isOk ? this._value : fallback;
  }
}

/** The outcome of an import that returns nothing on success (WIT `result<_, error>`). */
export class Status {
  constructor(private _error: IceError | null) {}

  get isOk(): bool {
    return this._error === null;
  }

  get isErr(): bool {
    return this._error !== null;
  }

  /** The error; aborts if this is ok. */
  get error(): IceError {
    const e = this._error;
    if (e === null) throw new Error("Status.error read on an ok status");
    return e;
  }
}

/** The one ok Status (ok carries nothing, so it is shared instead of allocated per call). */
export const STATUS_OK = new Status(null);
