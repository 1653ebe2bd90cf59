//! hostile: the attacks an adversarial guest would write, one small function each, chosen by the run
//! input. It exists to prove the host contains them: every attack either ends in a result the host
//! chose (a trap, an error value, a limit) or in a healthy `Ok`. Any other input is an `Err`.
//!
//! The raw attacks call the core imports through their own declarations, bypassing the SDK's safe
//! lowering, to hand the host pointers and lengths the SDK would never produce.

use std::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

// The same imports the SDK declares (identical signatures, so the linker merges them into one).
#[link(wasm_import_module = "ice:agent/log@0.1.0")]
extern "C" {
    #[link_name = "write"]
    fn raw_log_write(level: i32, ptr: *const u8, len: usize, ret: *mut u8);
}
#[link(wasm_import_module = "ice:agent/clock@0.1.0")]
extern "C" {
    #[link_name = "now"]
    fn raw_clock_now(ret: *mut u8);
}

const LEVEL_INFO: i32 = 2; // log.level.info

// Statics touched through volatile accesses: the optimizer must assume they are observed, so the
// loops and the recursion below cannot be deleted or folded away.
static mut SPIN_CELL: u32 = 0;
static mut DEPTH_CELL: u32 = 0;
static mut NEVER: bool = false;

// Invalid UTF-8: "hi", then 0xFF and 0xFE (never valid), then 0xC0 0x80 (an overlong NUL).
static BAD_UTF8: [u8; 6] = [0x68, 0x69, 0xff, 0xfe, 0xc0, 0x80];
// A small static buffer for oob-length: a valid start, a length that runs off the end of memory.
static SMALL_BUF: [u8; 16] = [0; 16];

/// Return area for the raw calls (result<_, error> needs 12 bytes, result<u64, error> 24).
#[repr(C, align(8))]
struct RawRet([u8; 24]);

/// loop: burns CPU forever without ever calling into the host, so only preemption (fuel, epochs, a
/// watchdog) can stop it; the host gets no import call to hook.
fn spin() -> Result<String, String> {
    loop {
        unsafe { write_volatile(addr_of_mut!(SPIN_CELL), read_volatile(addr_of!(SPIN_CELL)).wrapping_add(1)) };
    }
}

/// loop-imports: spins forever but calls the host each time, so a per-call budget (maxCalls) or a
/// deadline checked in imports can stop it; results are ignored so a refusal does not end it.
fn spin_with_imports() -> Result<String, String> {
    loop {
        let _ = ice::clock::now();
    }
}

/// grow: a memory bomb through the allocator. Each 1 MiB buffer is filled (touched) and kept alive in
/// `hoard`; a volatile write per 64 KiB page makes the allocation observable, so it cannot be elided.
/// It ends when the allocator cannot grow memory any more (an abort, i.e. a trap), never in a return.
fn grow_heap() -> Result<String, String> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![1u8; 1 << 20];
        let mut at = 0;
        while at < block.len() {
            unsafe { write_volatile(block.as_mut_ptr().add(at), 2) };
            at += 1 << 16;
        }
        hoard.push(block);
    }
}

/// grow-raw: asks for pages directly until the host's memory limit refuses, and handles that itself:
/// a refused memory.grow is a value (usize::MAX, i.e. -1), not a trap, so the guest can report it.
fn grow_raw() -> Result<String, String> {
    let mut pages: u32 = 0;
    while core::arch::wasm32::memory_grow(0, 1) != usize::MAX {
        pages += 1;
    }
    Ok(format!("grow refused after {} pages", pages))
}

/// fill-loop / copy-loop: write_bytes / copy_nonoverlapping of 16 MiB, forever. Rust 1.63 cannot
/// enable bulk-memory for a function (`#[target_feature(enable = "bulk-memory")]` is unstable), so
/// these compile to compiler-builtins' memset/memcpy loops, metered per iteration; the memory.fill /
/// memory.copy form of this attack is a crafted component in test/load-bounds.test.ts.
const BULK_BYTES: usize = 16 << 20;

unsafe fn fill_forever(block: *mut u8) -> ! {
    loop {
        let value = read_volatile(block).wrapping_add(1);
        core::ptr::write_bytes(block, value, BULK_BYTES);
    }
}

unsafe fn copy_forever(from: *mut u8, to: *mut u8) -> ! {
    loop {
        core::ptr::copy_nonoverlapping(from, to, BULK_BYTES);
        write_volatile(from, read_volatile(to).wrapping_add(1));
    }
}

fn fill_loop() -> Result<String, String> {
    let mut block = vec![0u8; BULK_BYTES];
    unsafe { fill_forever(block.as_mut_ptr()) }
}

fn copy_loop() -> Result<String, String> {
    let mut from = vec![0u8; BULK_BYTES];
    let mut to = vec![0u8; BULK_BYTES];
    unsafe { copy_forever(from.as_mut_ptr(), to.as_mut_ptr()) }
}

/// recurse: unbounded non-tail recursion. The volatile store after the call keeps it out of tail
/// position (no loop conversion), and the volatile `NEVER` check keeps the compiler from proving it
/// never returns; the wasm call stack overflows, a trap in the engine before any host code runs.
#[inline(never)]
fn dive(depth: u32) -> u32 {
    if unsafe { read_volatile(addr_of!(NEVER)) } {
        return depth;
    }
    let below = dive(depth.wrapping_add(1));
    unsafe { write_volatile(addr_of_mut!(DEPTH_CELL), below) };
    below.wrapping_add(1)
}

fn recurse() -> Result<String, String> {
    Ok(format!("recurse returned {}", dive(0)))
}

/// callback-trap: a trap deep inside library code (the sort) reached through a guest closure, so the
/// trap unwinds through frames the guest did not write.
fn callback_trap() -> Result<String, String> {
    let mut x: u32 = 12345;
    let mut values: Vec<i32> = (0..1000)
        .map(|_| {
            x = x.wrapping_mul(1103515245).wrapping_add(12345); // a fixed LCG: unsorted, same every run
            ((x >> 8) & 0xffff) as i32
        })
        .collect();
    let mut calls = 0u32;
    values.sort_by(|a, b| {
        calls += 1;
        if calls == 500 {
            core::arch::wasm32::unreachable();
        }
        a.cmp(b)
    });
    Ok(format!("sorted after {} comparisons", calls))
}

/// big-log: one 100 MiB message through the safe API, to test the host's message-size limit and that
/// it refuses without copying the whole thing into the ledger. The guest reports what came back.
fn big_log() -> Result<String, String> {
    let message = "x".repeat(100 * 1024 * 1024);
    let outcome = match ice::log::info(&message) {
        Ok(()) => "ok",
        Err(e) => e.kind(),
    };
    Ok(format!("big-log: {}", outcome))
}

/// Calls the raw log.write and lifts the result tag itself (any error message the host allocated is
/// left behind: the point is what the host does, not tidiness).
fn raw_log(name: &str, ptr: *const u8, len: usize) -> Result<String, String> {
    let mut ret = RawRet([0; 24]);
    unsafe { raw_log_write(LEVEL_INFO, ptr, len, ret.0.as_mut_ptr()) };
    Ok(format!("{}: {}", name, if ret.0[0] == 0 { "ok" } else { "err" }))
}

/// bad-utf8: a string argument that is not UTF-8, which the SDK never produces (a `&str` cannot hold
/// it); the host must reject or repair it rather than pass it to the ledger or a policy matcher.
fn bad_utf8() -> Result<String, String> {
    raw_log("bad-utf8", BAD_UTF8.as_ptr(), BAD_UTF8.len())
}

/// oob-pointer: a string pointer far outside linear memory; the host must bounds-check the read.
fn oob_pointer() -> Result<String, String> {
    raw_log("oob-pointer", 0xFFFF_0000usize as *const u8, 1000)
}

/// oob-length: a valid start whose length runs past the end of memory (and near 2 GiB, in case the
/// host allocates before it checks).
fn oob_length() -> Result<String, String> {
    raw_log("oob-length", SMALL_BUF.as_ptr(), 0x7FFF_FFFF)
}

/// bad-retptr: a return area outside memory; the host must not write its result there (nor crash).
fn bad_retptr() -> Result<String, String> {
    unsafe { raw_clock_now(0xFFFF_FFF0usize as *mut u8) };
    Ok("bad-retptr: returned".to_string())
}

/// denied-10k: hammers a denied call, to show every refusal is cheap, recorded, and stays a value.
fn denied_10k() -> Result<String, String> {
    let denied = (0..10_000)
        .filter(|_| matches!(ice::kv::set("secret", "x"), Err(e) if e.is_denied()))
        .count();
    Ok(format!("{} denied", denied))
}

/// denied-then-loop: 100 denied calls, then a loop without imports: if the host kills it at its
/// deadline, the record of every one of those calls must survive the kill.
fn denied_then_loop() -> Result<String, String> {
    for _ in 0..100 {
        let _ = ice::kv::set("secret", "x");
    }
    spin()
}

/// huge-output: a 2 MiB result, to test the host's output limit.
fn huge_output() -> Result<String, String> {
    Ok("y".repeat(2 * 1024 * 1024))
}

/// kv-flood: kv.set of 1000-byte values under fresh keys (flood/0, flood/1, ...) until the host says
/// no (at most 1,000,000): the component's kv quota must stop it with a typed error, not the disk.
fn kv_flood() -> Result<String, String> {
    let value = "v".repeat(1000);
    let mut n: u32 = 0;
    while n < 1_000_000 {
        if let Err(e) = ice::kv::set(&format!("flood/{}", n), &value) {
            return Ok(format!("kv-flood: {} set, then {}: {}", n, e.kind(), e.message()));
        }
        n += 1;
    }
    Ok(format!("kv-flood: {} set", n))
}

/// kv-drain: deletes every key kv.keys("flood/") lists (what kv-flood left), to show deletes free quota.
fn kv_drain() -> Result<String, String> {
    let keys = match ice::kv::keys("flood/") {
        Ok(keys) => keys,
        Err(e) => return Ok(format!("kv-drain: keys {}: {}", e.kind(), e.message())),
    };
    for (i, key) in keys.iter().enumerate() {
        if let Err(e) = ice::kv::delete(key) {
            return Ok(format!("kv-drain: {} deleted, then {}", i, e.kind()));
        }
    }
    Ok(format!("kv-drain: {} deleted", keys.len()))
}

/// kv-keys: lists every key (prefix ""), to show the listing cap counts only keys the guest may read.
fn kv_keys() -> Result<String, String> {
    match ice::kv::keys("") {
        Ok(keys) => Ok(format!("kv-keys: {}", keys.len())),
        Err(e) => Ok(format!("kv-keys: {}: {}", e.kind(), e.message())),
    }
}

/// event-flood: events.emit of 60,000-byte payloads (under audit.maxCaptureBytes, so each is recorded
/// whole) until the host says no (at most 1,000,000): the run's ledger budget must stop it.
fn event_flood() -> Result<String, String> {
    let payload = "e".repeat(60_000);
    let mut n: u32 = 0;
    while n < 1_000_000 {
        if let Err(e) = ice::events::emit("flood.tick", &payload) {
            return Ok(format!("event-flood: {} emitted, then {}: {}", n, e.kind(), e.message()));
        }
        n += 1;
    }
    Ok(format!("event-flood: {} emitted", n))
}

// log-echo:<text>: logs <text> verbatim (escape sequences, bidi overrides, a forged "ok" line), so the
// tests can check every human output of the host neutralizes guest text.
fn log_echo(text: &str) -> Result<String, String> {
    let _ = ice::log::info(text);
    Ok("logged".to_string())
}

fn run(input: String) -> Result<String, String> {
    if input.starts_with("log-echo:") {
        return log_echo(&input["log-echo:".len()..]);
    }
    match input.as_str() {
        "loop" => spin(),
        "denied-then-loop" => denied_then_loop(),
        "loop-imports" => spin_with_imports(),
        "grow" => grow_heap(),
        "grow-raw" => grow_raw(),
        "fill-loop" => fill_loop(),
        "copy-loop" => copy_loop(),
        "recurse" => recurse(),
        "callback-trap" => callback_trap(),
        "big-log" => big_log(),
        "bad-utf8" => bad_utf8(),
        "oob-pointer" => oob_pointer(),
        "oob-length" => oob_length(),
        "bad-retptr" => bad_retptr(),
        "denied-10k" => denied_10k(),
        "huge-output" => huge_output(),
        "kv-flood" => kv_flood(),
        "kv-drain" => kv_drain(),
        "kv-keys" => kv_keys(),
        "event-flood" => event_flood(),
        "ok" => Ok("still here".to_string()),
        _ => Err(format!("unknown attack: {}", input)),
    }
}

ice::export_run!(run);
