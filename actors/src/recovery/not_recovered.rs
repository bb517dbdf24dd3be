//! Why a session asking for recovery became a fresh one; each is a `pushgate_recoveries_total`
//! outcome.

/// Why a recovery failed. The client is never told which (nothing reveals whether a `pid`
/// existed): it only sees a fresh session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotRecovered {
    /// The session was kept, but its window has passed.
    #[error("expired")]
    Expired,
    /// No session is kept under this `pid` (never was, already recovered, or long expired).
    #[error("unknown")]
    Unknown,
    /// Pushes after the client's offset are no longer in the history, or the offset is not
    /// one of this process life's.
    #[error("offset_too_old")]
    OffsetTooOld,
    /// The kept session belongs to another user.
    #[error("user_mismatch")]
    UserMismatch,
}

impl NotRecovered {
    /// The `outcome` label value.
    pub fn name(self) -> &'static str {
        match self {
            NotRecovered::Expired => "expired",
            NotRecovered::Unknown => "unknown",
            NotRecovered::OffsetTooOld => "offset_too_old",
            NotRecovered::UserMismatch => "user_mismatch",
        }
    }

    /// Every outcome, for pre-registering the metric's labels.
    pub const ALL: [NotRecovered; 4] = [
        NotRecovered::Expired,
        NotRecovered::Unknown,
        NotRecovered::OffsetTooOld,
        NotRecovered::UserMismatch,
    ];
}
