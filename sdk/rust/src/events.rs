//! `ice:agent/events`: domain events the guest emits, recorded in the run's ledger.

use crate::abi::{ffi, RetArea};
use crate::Error;

/// Emits an event of `kind` (e.g. `counter.incremented`) with a `payload` (free text; JSON by
/// convention).
pub fn emit(kind: &str, payload: &str) -> Result<(), Error> {
    let mut ret = RetArea::new();
    unsafe { ffi::events_emit(kind.as_ptr(), kind.len(), payload.as_ptr(), payload.len(), ret.ptr()) };
    ret.take_status()
}
