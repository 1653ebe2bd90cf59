/** The seam between the per-run resource classes and the WASI run that has the kernel decide and record their calls. */
export const INTERNAL: unique symbol = Symbol('ice internal construction');

export interface WasiCallRouter {
  /** A method of a resource, on `self` (a wrapper of this run). */
  method(qualified: string, resource: string, method: string, self: unknown, args: unknown[]): unknown;
  /** A static function of a resource class. */
  staticCall(qualified: string, resource: string, method: string, shimClass: unknown, args: unknown[]): unknown;
  /** The guest constructs a resource. */
  construct(qualified: string, resource: string, shimClass: unknown, args: unknown[]): unknown;
}
