//! fetcher: input is a URL. GET it with `Accept: text/plain`, log `fetched <status> (<n> bytes)`,
//! then summarise the body (UTF-8, malformed sequences → U+FFFD) with model "local/echo" (64
//! tokens). → Ok("status=<status> bytes=<n> summary=<text> tokens=<input>+<output>"), or
//! Err("http.fetch <kind>: <message>") / Err("model.complete <kind>: <message>").

use ice::http::{self, Request};
use ice::model::{self, Message};

fn run(input: String) -> Result<String, String> {
    let res = http::fetch(&Request::get(input).header("Accept", "text/plain"))
        .map_err(|e| format!("http.fetch {}", e))?;
    let n = res.body.len();
    let _ = ice::log::info(&format!("fetched {} ({} bytes)", res.status, n)); // a denied log is ignored
    let messages = [Message::system("Summarize in one line."), Message::user(res.text_lossy())];
    let done = model::complete("local/echo", &messages, 64).map_err(|e| format!("model.complete {}", e))?;
    Ok(format!(
        "status={} bytes={} summary={} tokens={}+{}",
        res.status, n, done.text, done.usage.input_tokens, done.usage.output_tokens
    ))
}

ice::export_run!(run);
