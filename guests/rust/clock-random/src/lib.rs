//! clock-random: input is a decimal byte count (empty → 16).
//! → Ok("now=<ms> random=<lowercase hex>"), or Err("clock.now <kind>: <message>") /
//!   Err("random.bytes <kind>: <message>").

use ice::{clock, random};

fn run(input: String) -> Result<String, String> {
    let count: u32 = if input.is_empty() {
        16
    } else {
        input.parse().map_err(|_| format!("not a byte count: {:?}", input))?
    };
    let now = clock::now().map_err(|e| format!("clock.now {}", e))?;
    let bytes = random::bytes(count).map_err(|e| format!("random.bytes {}", e))?;
    let hex: String = bytes.iter().map(|b| format!("{:02x}", b)).collect();
    Ok(format!("now={} random={}", now, hex))
}

ice::export_run!(run);
