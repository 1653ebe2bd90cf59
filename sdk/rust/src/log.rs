//! `ice:agent/log`: structured guest logging; every message lands in the run's audit ledger.
//!
//! Each function returns whether the host accepted the message (a policy may deny a level or cap
//! the calls). Ignoring it is fine, and explicit: `let _ = ice::log::info("…");`.

use crate::abi::{ffi, RetArea};
use crate::Error;

/// `log.level`, in WIT order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

/// Writes one message at `level`.
pub fn write(level: Level, message: &str) -> Result<(), Error> {
    let mut ret = RetArea::new();
    unsafe { ffi::log_write(level as i32, message.as_ptr(), message.len(), ret.ptr()) };
    ret.take_status()
}

pub fn trace(message: &str) -> Result<(), Error> {
    write(Level::Trace, message)
}

pub fn debug(message: &str) -> Result<(), Error> {
    write(Level::Debug, message)
}

pub fn info(message: &str) -> Result<(), Error> {
    write(Level::Info, message)
}

pub fn warn(message: &str) -> Result<(), Error> {
    write(Level::Warn, message)
}

pub fn error(message: &str) -> Result<(), Error> {
    write(Level::Error, message)
}
