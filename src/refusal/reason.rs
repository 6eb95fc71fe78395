//! Which answers to a join count as refused attempts: a campaign that exists said no to a
//! well-formed request. Unknown campaigns, malformed bodies and failures of a dependency are not
//! refusals (nothing was decided about the user); a retry answered with its own win is not either.
//! A purchase's refusal counts once, against the item it names (docs/design.md §22). A client
//! refused by the bot check counts too, when queueing as when joining (docs/design.md §16).

/// A counted reason: the error code the refused join was answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reason(&'static str);

/// Every code counted, in the order the API documents them.
pub const REASONS: [&str; 12] = [
    "SOLD_OUT",
    "ALREADY_PARTICIPATED",
    "CAMPAIGN_NOT_OPEN",
    "CAMPAIGN_ENDED",
    "CAMPAIGN_PAUSED",
    "RATE_LIMITED",
    "ADMISSION_REQUIRED",
    "ADMISSION_TOKEN_INVALID",
    "ADMISSION_TOKEN_USED",
    "ADMISSION_TOKEN_EXPIRED",
    "GROUP_LIMIT_REACHED",
    "BOT_CHECK_FAILED",
];

impl Reason {
    /// The reason for an answer's error code, `None` when that answer is not a refusal.
    pub fn of_code(code: &str) -> Option<Self> {
        REASONS.iter().find(|r| **r == code).map(|r| Self(r))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_of_a_decided_join_count() {
        assert_eq!(
            Reason::of_code("SOLD_OUT").map(Reason::as_str),
            Some("SOLD_OUT")
        );
        assert_eq!(
            Reason::of_code("ADMISSION_TOKEN_USED").map(Reason::as_str),
            Some("ADMISSION_TOKEN_USED")
        );
        for not_counted in [
            "CREATED",
            "CAMPAIGN_NOT_FOUND",
            "VALIDATION_FAILED",
            "SERVICE_BUSY",
            "DEPENDENCY_UNAVAILABLE",
            "IDEMPOTENCY_KEY_REUSED",
            "",
        ] {
            assert_eq!(Reason::of_code(not_counted), None, "{not_counted}");
        }
    }
}
