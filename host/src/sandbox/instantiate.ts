/**
 * A fresh component instance for one run: jco's generated `instantiate` over the compiled core modules,
 * every core module given the run's meter, and the core module that imports ICE interfaces given the
 * kernel's own bindings (capabilities' `binding`) in place of jco's trampolines.
 */
import type { GuestMemory, CoreFunction } from '../capabilities/abi.js';
import { ICE_PACKAGE } from '../core/world.js';
import { FUEL_GLOBAL, FootprintTally, MEMORY_BUDGET_GLOBAL, MEMORY_REFUSED_GLOBAL, METER_MODULE, REFUEL_FUNCTION, footprintOf, type Footprint } from '../component/core-binary.js';
import type { AgentExports, GeneratedInstantiate, Meter } from '../component/prepare.js';
import { directRunOf, directRuns, gluePlainRun, type DirectRun } from './direct-run.js';

/** What serves a run's imports: the kernel. */
export interface ImportProvider {
  /** The jco-level import object, keyed by unversioned interface name. */
  readonly imports: Record<string, unknown>;
  /** The core-level functions of ICE's own bindings, once the guest's memory exists. */
  coreImports(guest: GuestMemory): Record<string, Record<string, CoreFunction>>;
}

const ICE_IMPORT_PREFIX = `${ICE_PACKAGE}/`;

/** A component instance whose core instances do not fit the budget or the host's caps (load refuses these first). */
export class FootprintError extends Error {
  override readonly name = 'FootprintError';
}

const footprints = new WeakMap<WebAssembly.Module, Footprint>();

function footprint(module: WebAssembly.Module): Footprint {
  let known = footprints.get(module);
  if (!known) {
    known = footprintOf(module);
    footprints.set(module, known);
  }
  return known;
}

export function instantiateGenerated(
  generated: GeneratedInstantiate,
  modules: ReadonlyMap<string, WebAssembly.Module>,
  provider: ImportProvider,
  meter: Meter,
): AgentExports {
  const metering = { [FUEL_GLOBAL]: meter.fuel, [MEMORY_REFUSED_GLOBAL]: meter.memoryRefused, [MEMORY_BUDGET_GLOBAL]: meter.memoryBudget, [REFUEL_FUNCTION]: meter.refuel };
  // Charged before each core instance exists, so memory over the budget is never allocated; what is
  // left is the budget every metered memory.grow draws on.
  const tally = new FootprintTally(meter.memoryBudget.value as number);
  const charge = (module: WebAssembly.Module): void => {
    const refusal = tally.add(footprint(module));
    if (refusal !== undefined) throw new FootprintError(`the component is refused at instantiation: ${refusal}`);
    meter.memoryBudget.value = tally.budgetPages - tally.pages;
  };
  // The core instance `run` can be called on directly (direct-run.ts), when the glue is the plain kind.
  const plain = gluePlainRun(generated);
  const direct: DirectRun[] = [];
  const exports = generated(
    (path) => {
      const module = modules.get(path);
      if (!module) throw new Error(`transpiled component has no core module ${path}`);
      return module;
    },
    provider.imports,
    (module, given) => {
      const coreImports = given ?? {};
      charge(module);
      if (!Object.keys(coreImports).some((name) => name.startsWith(ICE_IMPORT_PREFIX))) {
        return new WebAssembly.Instance(module, { ...coreImports, [METER_MODULE]: metering });
      }
      const guest: GuestMemory = {};
      const instance = new WebAssembly.Instance(module, { ...coreImports, ...provider.coreImports(guest), [METER_MODULE]: metering });
      const { memory, cabi_realloc: realloc } = instance.exports as { memory?: WebAssembly.Memory; cabi_realloc?: GuestMemory['realloc'] };
      guest.memory = memory;
      guest.realloc = realloc;
      const entry = plain ? directRunOf(instance, module) : undefined;
      if (entry) direct.push(entry);
      return instance;
    },
  );
  if (direct.length === 1) directRuns.set(exports, direct[0]!);
  return exports;
}
