//! A request's outcome: a Win32 error number and, for some calls, a result
//! (ERROR_MORE_DATA carries one too); or word that it comes later, through
//! the session's outbox (a [`LateReply`](crate::core::outbox::LateReply)).

use ddm_proto::message::ReplyResult;
use ddm_proto::WinError;

#[derive(Debug)]
pub struct Outcome {
    pub error: WinError,
    pub result: Option<ReplyResult>,
    /// The real outcome comes later, as a reply in the session's outbox
    /// (a synchronous Connect, a reload, a journal read).
    pub later: bool,
}

impl Outcome {
    /// NO_ERROR with nothing to return.
    pub fn done() -> Self {
        WinError::NO_ERROR.into()
    }

    /// NO_ERROR with a result.
    pub fn ok(result: ReplyResult) -> Self {
        Outcome {
            error: WinError::NO_ERROR,
            result: Some(result),
            later: false,
        }
    }

    /// The outcome will come through the session's outbox.
    pub fn later() -> Self {
        Outcome {
            error: WinError::PENDING,
            result: None,
            later: true,
        }
    }
}

impl From<WinError> for Outcome {
    fn from(error: WinError) -> Self {
        Outcome {
            error,
            result: None,
            later: false,
        }
    }
}

impl From<Result<(), WinError>> for Outcome {
    fn from(result: Result<(), WinError>) -> Self {
        result.map_or_else(Outcome::from, |()| Outcome::done())
    }
}
