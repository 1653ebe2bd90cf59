//! trap: logs, then traps. Input "abort" → panics (the SDK's panic hook logs the message at level
//! error, then the run traps); anything else → `unreachable` (a bare trap, nothing logged).

fn run(input: String) -> Result<String, String> {
    let _ = ice::log::info("about to trap");
    if input == "abort" {
        panic!("guest gave up: {}", input);
    }
    core::arch::wasm32::unreachable()
}

ice::export_run!(run);
