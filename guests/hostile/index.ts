// hostile: the attacks an adversarial guest would write, one small function each, chosen by the run
// input. It exists to prove the host contains them: every attack either ends in a result the host
// chose (a trap, an error value, a limit) or in a healthy `ok`. Any other input is an err.
//
// The raw attacks call the core imports directly (the SDK's own bindings, `ice/imports`), bypassing
// the SDK's safe lowering, to hand the host pointers and lengths the SDK would never produce.
import { clock, events, kv, log, Result } from "ice";
import { _clock_now, _log_write } from "ice/imports";

const LEVEL_INFO: i32 = 2; // log.level.info

// Memory the optimizer must assume is observed: a store to linear memory is a side effect, so a loop
// that stores here survives -O3 even though nothing ever reads it back.
const SPIN_CELL: usize = memory.data(8, 8);
// Written after each recursive call returns, so the call is never in tail position.
const DEPTH_CELL: usize = memory.data(8, 8);
// Invalid UTF-8: "hi", then 0xFF and 0xFE (never valid), then 0xC0 0x80 (an overlong NUL).
const BAD_UTF8: usize = memory.data<u8>([0x68, 0x69, 0xff, 0xfe, 0xc0, 0x80]);
const BAD_UTF8_LEN: usize = 6;
// A small static buffer for oob-length: a valid start, a length that runs off the end of memory.
const SMALL_BUF: usize = memory.data(16, 8);
// Return area for the raw calls (result<_, error> needs 12 bytes, result<u64, error> 24).
const RAW_RET: usize = memory.data(24, 8);

function ok(s: string): Result<string, string> {
  return Result.ok<string, string>(s);
}

// loop: burns CPU forever without ever calling into the host, so only preemption (fuel, epochs, a
// watchdog) can stop it; the host gets no import call to hook.
function spin(): Result<string, string> {
  while (true) {
    store<u32>(SPIN_CELL, load<u32>(SPIN_CELL) + 1);
  }
}

// loop-imports: spins forever but calls the host each time, so a per-call budget (maxCalls) or a
// deadline checked in imports can stop it; results are ignored so a refusal does not end it.
function spinWithImports(): Result<string, string> {
  while (true) {
    clock.now();
  }
}

// grow: a memory bomb through the allocator. Each 1 MiB buffer is zero-filled (touched) and kept
// alive in `hoard`, so the collector cannot reclaim it; it ends when the allocator cannot grow
// memory any more (a trap), never in a return.
function growHeap(): Result<string, string> {
  const hoard = new Array<Uint8Array>();
  while (true) {
    const block = new Uint8Array(1 << 20);
    block[block.length - 1] = 1;
    hoard.push(block);
  }
}

// grow-raw: asks for pages directly until the host's memory limit refuses (-1), and handles that
// itself: a refused memory.grow is a value, not a trap, so the guest can carry on and report.
function growRaw(): Result<string, string> {
  let pages = 0;
  while (memory.grow(1) >= 0) pages++;
  return ok("grow refused after " + pages.toString() + " pages");
}

// fill-loop / copy-loop: memory.fill / memory.copy of 16 MiB, forever. Each iteration is one loop
// header (one fuel unit before bulk ops were charged by length), so only length-based fuel stops it.
const BULK_BYTES: i32 = 16 << 20;

function fillLoop(): Result<string, string> {
  const block = heap.alloc(BULK_BYTES);
  while (true) {
    memory.fill(block, <u8>(load<u8>(block) + 1), BULK_BYTES);
  }
  return ok("unreachable");
}

function copyLoop(): Result<string, string> {
  const from = heap.alloc(BULK_BYTES);
  const to = heap.alloc(BULK_BYTES);
  while (true) {
    memory.copy(to, from, BULK_BYTES);
    store<u8>(from, load<u8>(to) + 1);
  }
  return ok("unreachable");
}

// recurse: unbounded non-tail recursion. The store after the call keeps it from being turned into a
// loop, so the wasm call stack overflows (a trap in the engine, before any host code runs).
function dive(depth: u32): u32 {
  const below = dive(depth + 1);
  store<u32>(DEPTH_CELL, below);
  return below + 1;
}

function recurse(): Result<string, string> {
  return ok("recurse returned " + dive(0).toString());
}

// callback-trap: a trap deep inside library code (the sort) reached through a guest callback, so the
// trap unwinds through frames the guest did not write. AssemblyScript has no closures: the
// comparator counts its calls in a global.
let compareCalls = 0;

function trappingCompare(a: i32, b: i32): i32 {
  compareCalls++;
  if (compareCalls == 500) unreachable();
  return a - b;
}

function callbackTrap(): Result<string, string> {
  const values = new Array<i32>(1000);
  let x: u32 = 12345;
  for (let i = 0; i < 1000; i++) {
    x = x * 1103515245 + 12345; // a fixed LCG: unsorted, and the same every run
    values[i] = <i32>((x >> 8) & 0xffff);
  }
  compareCalls = 0;
  values.sort(trappingCompare);
  return ok("sorted after " + compareCalls.toString() + " comparisons");
}

// big-log: one 100 MiB message through the safe API, to test the host's message-size limit and that
// it refuses without copying the whole thing into the ledger. The guest reports what came back.
function bigLog(): Result<string, string> {
  const message = "x".repeat(100 * 1024 * 1024);
  const status = log.info(message);
  return ok("big-log: " + (status.isOk ? "ok" : status.error.kind));
}

// Lifts the tag of a result<_, error> the host wrote to RAW_RET (any error message it allocated is
// left behind: the point is what the host does, not tidiness).
function rawOutcome(name: string): Result<string, string> {
  return ok(name + ": " + (load<u8>(RAW_RET) == 0 ? "ok" : "err"));
}

// bad-utf8: a string argument that is not UTF-8, which the SDK never produces; the host must reject
// (or repair) it rather than pass it to the ledger or a policy matcher.
function badUtf8(): Result<string, string> {
  _log_write(LEVEL_INFO, BAD_UTF8, BAD_UTF8_LEN, RAW_RET);
  return rawOutcome("bad-utf8");
}

// oob-pointer: a string pointer far outside linear memory; the host must bounds-check the read.
function oobPointer(): Result<string, string> {
  _log_write(LEVEL_INFO, 0xFFFF0000, 1000, RAW_RET);
  return rawOutcome("oob-pointer");
}

// oob-length: a valid start whose length runs past the end of memory (and near 2 GiB, in case the
// host allocates before it checks).
function oobLength(): Result<string, string> {
  _log_write(LEVEL_INFO, SMALL_BUF, 0x7FFFFFFF, RAW_RET);
  return rawOutcome("oob-length");
}

// bad-retptr: a return area outside memory; the host must not write its result there (nor crash).
function badRetptr(): Result<string, string> {
  _clock_now(0xFFFFFFF0);
  return ok("bad-retptr: returned");
}

// denied-10k: hammers a denied call, to show every refusal is cheap, recorded, and stays a value.
function denied10k(): Result<string, string> {
  let denied = 0;
  for (let i = 0; i < 10000; i++) {
    const status = kv.set("secret", "x");
    if (status.isErr && status.error.isDenied) denied++;
  }
  return ok(denied.toString() + " denied");
}

// denied-then-loop: 100 denied calls, then a loop without imports: if the host kills it at its
// deadline, the record of every one of those calls must survive the kill.
function deniedThenLoop(): Result<string, string> {
  for (let i = 0; i < 100; i++) kv.set("secret", "x");
  return spin();
}

// huge-output: a 2 MiB result, to test the host's output limit.
function hugeOutput(): Result<string, string> {
  return ok("y".repeat(2 * 1024 * 1024));
}

// kv-flood: kv.set of 1000-byte values under fresh keys (flood/0, flood/1, ...) until the host says
// no (at most 1,000,000): the component's kv quota must stop it with a typed error, not the disk.
function kvFlood(): Result<string, string> {
  const value = "v".repeat(1000);
  let n = 0;
  for (; n < 1000000; n++) {
    const status = kv.set("flood/" + n.toString(), value);
    if (status.isErr) return ok("kv-flood: " + n.toString() + " set, then " + status.error.kind + ": " + status.error.message);
  }
  return ok("kv-flood: " + n.toString() + " set");
}

// kv-drain: deletes every key kv.keys("flood/") lists (what kv-flood left), to show deletes free quota.
function kvDrain(): Result<string, string> {
  const listed = kv.keys("flood/");
  if (listed.isErr) return ok("kv-drain: keys " + listed.error.kind + ": " + listed.error.message);
  const keys = listed.value;
  for (let i = 0; i < keys.length; i++) {
    const status = kv.delete(keys[i]);
    if (status.isErr) return ok("kv-drain: " + i.toString() + " deleted, then " + status.error.kind);
  }
  return ok("kv-drain: " + keys.length.toString() + " deleted");
}

// kv-keys: lists every key (prefix ""), to show the listing cap counts only keys the guest may read.
function kvKeys(): Result<string, string> {
  const listed = kv.keys("");
  if (listed.isErr) return ok("kv-keys: " + listed.error.kind + ": " + listed.error.message);
  return ok("kv-keys: " + listed.value.length.toString());
}

// event-flood: events.emit of 60,000-byte payloads (under audit.maxCaptureBytes, so each is recorded
// whole) until the host says no (at most 1,000,000): the run's ledger budget must stop it.
function eventFlood(): Result<string, string> {
  const payload = "e".repeat(60000);
  let n = 0;
  for (; n < 1000000; n++) {
    const status = events.emit("flood.tick", payload);
    if (status.isErr) return ok("event-flood: " + n.toString() + " emitted, then " + status.error.kind + ": " + status.error.message);
  }
  return ok("event-flood: " + n.toString() + " emitted");
}

// log-echo:<text>: logs <text> verbatim (escape sequences, bidi overrides, a forged "ok" line), so the
// tests can check every human output of the host neutralizes guest text.
function logEcho(text: string): Result<string, string> {
  log.info(text);
  return ok("logged");
}

export function run(input: string): Result<string, string> {
  if (input.startsWith("log-echo:")) return logEcho(input.substring(9));
  if (input == "loop") return spin();
  if (input == "denied-then-loop") return deniedThenLoop();
  if (input == "loop-imports") return spinWithImports();
  if (input == "grow") return growHeap();
  if (input == "grow-raw") return growRaw();
  if (input == "fill-loop") return fillLoop();
  if (input == "copy-loop") return copyLoop();
  if (input == "recurse") return recurse();
  if (input == "callback-trap") return callbackTrap();
  if (input == "big-log") return bigLog();
  if (input == "bad-utf8") return badUtf8();
  if (input == "oob-pointer") return oobPointer();
  if (input == "oob-length") return oobLength();
  if (input == "bad-retptr") return badRetptr();
  if (input == "denied-10k") return denied10k();
  if (input == "huge-output") return hugeOutput();
  if (input == "kv-flood") return kvFlood();
  if (input == "kv-drain") return kvDrain();
  if (input == "kv-keys") return kvKeys();
  if (input == "event-flood") return eventFlood();
  if (input == "ok") return ok("still here");
  return Result.err<string, string>("unknown attack: " + input);
}
