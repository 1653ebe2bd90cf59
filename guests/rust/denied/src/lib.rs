//! denied: tries to write a secret, which its policy is expected to deny, and carries on.
//! → Ok("<kind>: <message>") of the denial, or Err(...) if the write was allowed.

fn run(input: String) -> Result<String, String> {
    match ice::kv::set("secrets/token", &input) {
        Ok(()) => Err("expected kv.set(\"secrets/token\") to be denied, but it was allowed".to_string()),
        Err(e) => {
            let _ = ice::log::info("denied as expected; carrying on");
            Ok(e.to_string())
        }
    }
}

ice::export_run!(run);
