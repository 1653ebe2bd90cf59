//! `ice:agent/model`: language-model completions through providers the host configures, under the
//! policy's `grants.model` (model patterns, token budgets, call count).
//!
//! ```ignore
//! let messages = [Message::system("Answer in one word."), Message::user("Capital of France?")];
//! let done = ice::model::complete("local/echo", &messages, 16)?;
//! ```

use crate::abi::{ffi, string_pair_records, take_string, RetArea};
use crate::Error;

/// One turn of the conversation; `role` is passed through as written (`system`, `user`, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message { role: role.into(), content: content.into() }
    }

    pub fn system(content: impl Into<String>) -> Message {
        Message::new("system", content)
    }

    pub fn user(content: impl Into<String>) -> Message {
        Message::new("user", content)
    }

    pub fn assistant(content: impl Into<String>) -> Message {
        Message::new("assistant", content)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub text: String,
    pub usage: Usage,
}

/// Completes `messages` with `model` (a name the policy allows), in at most `max_tokens` tokens.
pub fn complete(model: &str, messages: &[Message], max_tokens: u32) -> Result<Completion, Error> {
    // The records point into `messages`, which outlives the call.
    let records = string_pair_records(messages.iter().map(|m| (m.role.as_str(), m.content.as_str())));
    let mut ret = RetArea::new();
    unsafe { ffi::model_complete(model.as_ptr(), model.len(), records.as_ptr(), records.len(), max_tokens, ret.ptr()) };
    if ret.u8_at(0) != 0 {
        return Err(ret.take_error(4));
    }
    let text = unsafe { take_string(ret.u32_at(4), ret.u32_at(8)) };
    Ok(Completion { text, usage: Usage { input_tokens: ret.u32_at(12), output_tokens: ret.u32_at(16) } })
}
