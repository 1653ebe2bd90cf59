//! command: a WASI command that shows what the host let it see.
//!   stdout line 1: `args: <argv[1..] joined by " ">`
//!   stdout line 2: `stdin: <all of stdin>` (`stdin: <empty>` when there is none)
//!   `--env`:  then one `env: NAME=value` line per variable, sorted, so a test can compare the
//!             whole environment with the policy's (and see nothing of the host's)
//!   `--fail`: then `failing` on stderr and exit status 1

use std::io::{self, Read, Write};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut stdin = String::new();
    // An unreadable or closed stdin reads as empty: the policy may give the command none.
    let _ = io::stdin().read_to_string(&mut stdin);

    let mut out = io::stdout().lock();
    let _ = writeln!(out, "args: {}", args.join(" "));
    if stdin.is_empty() {
        let _ = writeln!(out, "stdin: <empty>");
    } else {
        let _ = writeln!(out, "stdin: {}", stdin);
    }
    if args.iter().any(|a| a == "--env") {
        let mut vars: Vec<(String, String)> = std::env::vars().collect();
        vars.sort();
        for (name, value) in vars {
            let _ = writeln!(out, "env: {}={}", name, value);
        }
    }
    let _ = out.flush();
    drop(out);

    if args.iter().any(|a| a == "--fail") {
        let _ = writeln!(io::stderr(), "failing");
        std::process::exit(1);
    }
}
