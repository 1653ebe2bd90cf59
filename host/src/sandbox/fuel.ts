/**
 * A run's meter: the fuel global the metered code counts down, handed out in slices from the run's
 * budget, and the flag raised on a refused memory.grow (component/meter.ts places the hooks).
 *
 * Slices are how a run on the calling thread (in-process execution, replay) gets a wall-clock deadline:
 * JavaScript cannot interrupt a synchronous wasm call, but preemptible metered code calls `refuel` each
 * time a slice is spent, and refuel then checks the clock. Fuel bounds every loop, recursion and bulk
 * memory operation, so a guest cannot run long without reaching refuel. Without a deadline (worker runs,
 * whose worker is terminated at the deadline) the only slice is the whole budget.
 */
import type { Meter } from '../component/prepare.js';

/**
 * Units per slice when a deadline is checked: a slice takes ~5-30 ms of guest work on this class of
 * machine, which bounds how late the deadline is noticed, at one host call per slice (nothing measurable).
 */
export const DEADLINE_SLICE = 1 << 22;

export interface RunMeter {
  readonly meter: Meter;
  /** Fuel the guest used so far (the whole budget once it ran out). */
  used(): number;
  /** Whether the guest asked for more fuel than the budget holds. */
  outOfFuel(): boolean;
  /** Whether the guest was stopped at the deadline (its fuel is then negative too). */
  pastDeadline(): boolean;
  /**
   * Stops the guest at its next fuel hook: for a deadline seen elsewhere (an import call), so a guest
   * that catches the exception thrown there still ends with a trap at once.
   */
  expire(): void;
  memoryRefused(): boolean;
}

/**
 * `deadline` is a `performance.now()` time; undefined means no deadline is checked here. `memoryPages`:
 * the component's memory budget (limits.memoryMiB in pages; core-binary.ts MEMORY_BUDGET_GLOBAL).
 */
export function runMeter(budget: number, deadline?: number, memoryPages = 65_536): RunMeter {
  const slice = deadline === undefined ? budget : Math.min(budget, DEADLINE_SLICE);
  // Fuel not yet handed to the guest.
  let reserve = budget - slice;
  const fuel = new WebAssembly.Global({ value: 'i64', mutable: true }, BigInt(slice));
  const memoryRefused = new WebAssembly.Global({ value: 'i32', mutable: true }, 0);
  const memoryBudget = new WebAssembly.Global({ value: 'i32', mutable: true }, memoryPages);
  let stopped = false;
  // Never throws: leaving fuel negative makes the metered code trap, which the guest cannot catch.
  const refuel = (): void => {
    if (stopped) return;
    if (deadline !== undefined && performance.now() >= deadline) {
      stopped = true;
      return;
    }
    const owed = Number(-(fuel.value as bigint)); // ≥ 1: what the guest took beyond its slice
    if (reserve < owed) return;
    const give = Math.min(reserve, owed + slice);
    reserve -= give;
    fuel.value = (fuel.value as bigint) + BigInt(give);
  };
  return {
    meter: { fuel, memoryRefused, memoryBudget, refuel },
    used: () => {
      const left = fuel.value as bigint;
      // Handed out minus what is left (negative when stopped at the deadline: the guest overdrew by that much).
      return left >= 0n || stopped ? budget - reserve - Number(left) : budget;
    },
    outOfFuel: () => !stopped && (fuel.value as bigint) < 0n,
    pastDeadline: () => stopped,
    expire: () => {
      const left = fuel.value as bigint;
      // What is left of the slice goes back to the reserve, so `used` stays exact.
      if (left >= 0n) reserve += Number(left) + 1;
      fuel.value = -1n;
      stopped = true;
    },
    memoryRefused: () => memoryRefused.value === 1,
  };
}
