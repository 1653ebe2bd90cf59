//! counter: a run counter kept in kv.
//!   "reset"         → deletes "count"                       → Ok("count reset")
//!   "keys:<prefix>" → kv::keys(prefix)                      → Ok(keys joined by ",")
//!   anything else   → count = get("count") + 1, set("count"), set("history/<n>", input) (may be
//!                     denied: ignored)                      → Ok("count=<n>")
//! A failing get/set/delete/keys of the counter → Err("kv.<fn> <kind>: <message>").

use ice::{kv, Error};

fn fail(function: &str, e: Error) -> String {
    format!("kv.{} {}", function, e)
}

fn run(input: String) -> Result<String, String> {
    if input == "reset" {
        kv::delete("count").map_err(|e| fail("delete", e))?;
        return Ok("count reset".to_string());
    }
    if let Some(prefix) = input.strip_prefix("keys:") {
        let keys = kv::keys(prefix).map_err(|e| fail("keys", e))?;
        return Ok(keys.join(","));
    }
    let stored = kv::get("count").map_err(|e| fail("get", e))?;
    // Like the AssemblyScript guest: a value that is not a number counts as 0.
    let n = stored.and_then(|s| s.parse::<i64>().ok()).unwrap_or(0) + 1;
    kv::set("count", &n.to_string()).map_err(|e| fail("set", e))?;
    let _ = kv::set(&format!("history/{}", n), &input); // a policy may deny history: ignored
    Ok(format!("count={}", n))
}

ice::export_run!(run);
