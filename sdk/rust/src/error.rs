//! The WIT `error` variant (types.wit), in discriminant order.

use std::fmt;

/// Why the host refused or could not complete an import call. The string is the host's
/// explanation (for `Denied`: the rule and how to allow the call).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The component's policy does not allow this call.
    Denied(String),
    /// A budget in the policy was exceeded (call count, size, bytes).
    Limit(String),
    /// The arguments are malformed for this call.
    Invalid(String),
    /// The call was allowed but the host could not perform it.
    Failed(String),
}

impl Error {
    /// The variant case as a word: `"denied"`, `"limit"`, `"invalid"` or `"failed"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Denied(_) => "denied",
            Error::Limit(_) => "limit",
            Error::Invalid(_) => "invalid",
            Error::Failed(_) => "failed",
        }
    }

    /// The host's explanation.
    pub fn message(&self) -> &str {
        match self {
            Error::Denied(m) | Error::Limit(m) | Error::Invalid(m) | Error::Failed(m) => m,
        }
    }

    pub fn is_denied(&self) -> bool {
        matches!(self, Error::Denied(_))
    }

    pub fn is_limit(&self) -> bool {
        matches!(self, Error::Limit(_))
    }

    pub(crate) fn from_tag(tag: u8, message: String) -> Error {
        match tag {
            0 => Error::Denied(message),
            1 => Error::Limit(message),
            2 => Error::Invalid(message),
            // 3, and anything else (a host bug) is reported as failed.
            _ => Error::Failed(message),
        }
    }
}

/// `<kind>: <message>`, the same text as the AssemblyScript SDK's `IceError.toString()`.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

impl std::error::Error for Error {}
