//! `ice:agent/http`: outbound HTTP under the policy's `grants.http`. The host decides every
//! request on its URL, follows redirects itself and may add secrets; the guest only sees the final
//! response.
//!
//! ```ignore
//! let res = ice::http::fetch(&ice::http::Request::get(url).header("Accept", "text/plain"))?;
//! let kind = res.header("content-type").unwrap_or("?");
//! ```

use crate::abi::{ffi, string_pair_records, take_bytes, take_string_pairs, RetArea};
use crate::Error;
use std::borrow::Cow;
use std::str::Utf8Error;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

impl Header {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Header {
        Header { name: name.into(), value: value.into() }
    }
}

/// A request: `Request::get(url)` / `Request::post(url, body)`, then chain `.header(name, value)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Sent as written (case-sensitive: `GET`).
    pub method: String,
    /// Absolute http(s).
    pub url: String,
    /// Host, Content-Length and hop-by-hop headers are refused by the host.
    pub headers: Vec<Header>,
    /// `None` sends no body at all; `Some(vec![])` sends an empty one.
    pub body: Option<Vec<u8>>,
}

impl Request {
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Request {
        Request { method: method.into(), url: url.into(), headers: Vec::new(), body: None }
    }

    pub fn get(url: impl Into<String>) -> Request {
        Request::new("GET", url)
    }

    pub fn post(url: impl Into<String>, body: Vec<u8>) -> Request {
        Request::new("POST", url).with_body(body)
    }

    /// Adds a header (repeatable).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push(Header::new(name, value));
        self
    }

    pub fn with_body(mut self, body: Vec<u8>) -> Request {
        self.body = Some(body);
        self
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as UTF-8, or why it is not.
    pub fn text(&self) -> Result<&str, Utf8Error> {
        std::str::from_utf8(&self.body)
    }

    /// The body as UTF-8, with malformed sequences replaced by U+FFFD.
    pub fn text_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The value of the first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
    }
}

/// Sends `req` (the host follows redirects) and returns the final response, whatever its status.
pub fn fetch(req: &Request) -> Result<Response, Error> {
    // Everything is lowered in place: the records point into `req`, which outlives the call.
    let headers = string_pair_records(req.headers.iter().map(|h| (h.name.as_str(), h.value.as_str())));
    let (body_is_some, body, body_len) = match &req.body {
        Some(b) => (1, b.as_ptr(), b.len()),
        None => (0, std::ptr::null(), 0),
    };
    let mut ret = RetArea::new();
    unsafe {
        ffi::http_fetch(
            req.method.as_ptr(),
            req.method.len(),
            req.url.as_ptr(),
            req.url.len(),
            headers.as_ptr(),
            headers.len(),
            body_is_some,
            body,
            body_len,
            ret.ptr(),
        )
    };
    if ret.u8_at(0) != 0 {
        return Err(ret.take_error(4));
    }
    let headers = unsafe { take_string_pairs(ret.u32_at(8), ret.u32_at(12), |name, value| Header { name, value }) };
    let body = unsafe { take_bytes(ret.u32_at(16), ret.u32_at(20)) };
    Ok(Response { status: ret.u16_at(4), headers, body })
}
