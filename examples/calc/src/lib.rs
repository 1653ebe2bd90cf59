//! calc: the `example:calc/calc` world (wit/calc.wit) in plain Rust, lowered to the canonical ABI
//! by hand (exports.rs, abi.rs) so the crate needs no binding generator and builds with rustc 1.63.
//! `ice build examples/calc` embeds wit/calc.wit (with the ice:agent package it imports kv from)
//! and makes the component.

#![deny(unsafe_op_in_unsafe_fn)]

mod abi;
mod calc;
mod exports;
mod geometry;

ice::export_cabi_realloc!();
