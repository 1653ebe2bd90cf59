//! event-emitter: each non-empty input line is "<kind> <payload>" (the payload may be empty); emits
//! each, carrying on after errors. → Ok(one line per event: "ok <kind>" or
//! "<error kind> <kind>: <message>")

fn run(input: String) -> Result<String, String> {
    let mut report = Vec::new();
    for line in input.split('\n').filter(|l| !l.is_empty()) {
        let (kind, payload) = match line.find(' ') {
            Some(at) => (&line[..at], &line[at + 1..]),
            None => (line, ""),
        };
        match ice::events::emit(kind, payload) {
            Ok(()) => report.push(format!("ok {}", kind)),
            Err(e) => report.push(format!("{} {}: {}", e.kind(), kind, e.message())),
        }
    }
    Ok(report.join("\n"))
}

ice::export_run!(run);
