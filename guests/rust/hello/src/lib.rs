//! hello: greets its input. Logs once (the log result is ignored: a denied log must not stop it).

fn run(input: String) -> Result<String, String> {
    // UTF-16 units, like the AssemblyScript guest's `input.length`, so both log the same text.
    let _ = ice::log::info(&format!("hello called with {} chars", input.encode_utf16().count()));
    if input.is_empty() {
        return Err("hello needs a name".to_string());
    }
    Ok(format!("hello, {}!", input))
}

ice::export_run!(run);
