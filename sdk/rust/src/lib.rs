//! ICE guest SDK for Rust: the `ice:agent@0.1.0` world (wit/) as safe functions.
//!
//! ```ignore
//! fn run(input: String) -> Result<String, String> {
//!     let _ = ice::log::info(&format!("run with {} bytes", input.len()));
//!     let n = match ice::kv::get("count") {
//!         Ok(v) => v.and_then(|s| s.parse::<u64>().ok()).unwrap_or(0) + 1,
//!         Err(e) => return Err(format!("kv.get {}", e)),
//!     };
//!     ice::kv::set("count", &n.to_string()).map_err(|e| e.to_string())?;
//!     Ok(format!("count={}", n))
//! }
//! ice::export_run!(run);
//! ```
//!
//! Every import returns a `Result<_, ice::Error>`: a policy refusal (denied / limit / invalid /
//! failed) is a value the guest can handle, never a panic. A panic in the guest is logged at level
//! `error` (message and location) and then traps the run.
//!
//! The canonical ABI (wasm32, utf8 strings) is written by hand in `abi.rs`: the crate has no
//! dependencies, so it builds with Debian's rustc 1.63 and no crate registry.

#![deny(unsafe_op_in_unsafe_fn)]

mod abi;
mod error;
#[doc(hidden)]
pub mod export;

pub mod clock;
pub mod events;
pub mod http;
pub mod kv;
pub mod log;
pub mod model;
pub mod random;

pub use error::Error;

/// Declares the agent's entry point, `fn(String) -> Result<String, String>`: `Ok` is the run's
/// output, `Err` a guest-level failure message. Use it once per crate, at the top level:
///
/// ```ignore
/// fn run(input: String) -> Result<String, String> { Ok(input) }
/// ice::export_run!(run);
/// ```
///
/// It exports the lowered world: `run`, `cabi_post_run` and `cabi_realloc` (the crate must be a
/// `cdylib`, which also exports `memory`).
#[macro_export]
macro_rules! export_run {
    ($run:path) => {
        const _: () = {
            #[allow(unused_unsafe)]
            #[export_name = "run"]
            unsafe extern "C" fn __ice_export_run(ptr: *mut u8, len: usize) -> *mut u8 {
                // A function of another type is a compile error here, naming the expected one.
                let run: fn(::std::string::String) -> ::std::result::Result<::std::string::String, ::std::string::String> = $run;
                unsafe { $crate::export::run(ptr, len, run) }
            }

            #[allow(unused_unsafe)]
            #[export_name = "cabi_post_run"]
            unsafe extern "C" fn __ice_export_post_run(ret: *mut u8) {
                unsafe { $crate::export::post_run(ret) }
            }
        };
        $crate::export_cabi_realloc!();
    };
}

/// Exports `cabi_realloc` alone, for a crate that lowers its own WIT world's exports by hand (a
/// component built from a `wit/` world, such as examples/calc) and only needs the host to be able to
/// write strings and lists into its memory. `export_run!` exports it too: use one or the other.
///
/// ```ignore
/// ice::export_cabi_realloc!();
/// ```
#[macro_export]
macro_rules! export_cabi_realloc {
    () => {
        const _: () = {
            #[allow(unused_unsafe)]
            #[export_name = "cabi_realloc"]
            unsafe extern "C" fn __ice_export_cabi_realloc(
                old: *mut u8,
                old_len: usize,
                align: usize,
                new_len: usize,
            ) -> *mut u8 {
                unsafe { $crate::export::realloc(old, old_len, align, new_len) }
            }
        };
    };
}
