/** A guest could not be built: names what was being built (`origin`) and why. */
export class BuildError extends Error {
  override readonly name = 'BuildError';
  constructor(
    /** What was being built: a source file or directory path. */
    readonly origin: string,
    /** Why, without the origin (compiler diagnostics included verbatim). */
    readonly reason: string,
  ) {
    super(`cannot build ${origin}: ${reason}`);
  }
}
