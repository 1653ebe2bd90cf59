//! The world's own functions, free of the ABI.

/// Wraps at 2^32, as the WIT says: a component never traps on an overflowing add.
pub fn add(a: u32, b: u32) -> u32 {
    a.wrapping_add(b)
}

/// Errors: `division by zero`, and `overflow` for the one quotient s64 cannot hold (MIN / -1).
pub fn divide(a: i64, b: i64) -> Result<i64, String> {
    if b == 0 {
        return Err("division by zero".to_string());
    }
    a.checked_div(b).ok_or_else(|| "overflow".to_string())
}

/// `Hello, <name>` and `Hello, <name>!` when excited.
pub fn greet(name: &str, excited: Option<bool>) -> String {
    let mark = if excited.unwrap_or(false) { "!" } else { "" };
    format!("Hello, {}{}", name, mark)
}

/// (count, mean, max); NaNs are skipped by max (f64::max) but do make the mean NaN.
pub fn stats(xs: &[f64]) -> (u32, f64, f64) {
    if xs.is_empty() {
        return (0, 0.0, 0.0);
    }
    let sum: f64 = xs.iter().sum();
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // A list longer than u32::MAX elements cannot exist in a 32-bit memory.
    (xs.len() as u32, sum / xs.len() as f64, max)
}

pub fn first_char(s: &str) -> Option<(char, u32)> {
    s.chars().next().map(|c| (c, c as u32))
}

/// FNV-1a, 64-bit.
pub fn checksum(data: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    data.iter().fold(OFFSET_BASIS, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(PRIME))
}

/// The error is the host's message as is for a denial (what the policy says and how to allow it),
/// `<kind>: <message>` for the other refusals (limit, invalid, failed).
pub fn remember(key: &str, value: &str) -> Result<(), String> {
    ice::kv::set(key, value).map_err(|e| if e.is_denied() { e.message().to_string() } else { e.to_string() })
}

/// The WIT gives recall no error case: a key it may not read, or a failed read, is none.
pub fn recall(key: &str) -> Option<String> {
    ice::kv::get(key).unwrap_or(None)
}
