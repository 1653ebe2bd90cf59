// Lowering of lists of two-string records (http `header`, model `message`): 16 bytes each, align 4,
// first string ptr @0, len @4, second string ptr @8, len @12. The array and every string are
// unmanaged blocks (see abi.ts), freed by freePairs once the import has returned.
import { freeBlock, loweredLen, lowerString } from "./abi";

/** A block for `count` records (pointer 0 for none: nothing to allocate, nothing to free). */
export function allocPairs(count: i32): usize {
  return count == 0 ? 0 : heap.alloc(<usize>count << 4);
}

/** Lowers record `i` of `array`. */
export function storePair(array: usize, i: i32, first: string, second: string): void {
  const at = array + (<usize>i << 4);
  store<usize>(at, lowerString(first));
  store<usize>(at, loweredLen, 4);
  store<usize>(at, lowerString(second), 8);
  store<usize>(at, loweredLen, 12);
}

/** Frees the strings of the `count` records of `array`, then the array. */
export function freePairs(array: usize, count: i32): void {
  for (let i = 0; i < count; i++) {
    const at = array + (<usize>i << 4);
    freeBlock(load<usize>(at));
    freeBlock(load<usize>(at, 8));
  }
  freeBlock(array);
}
