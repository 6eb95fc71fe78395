//! The label sets of the metric families in [`crate::telemetry::metrics::registry`], and [`ParticipationPath`], the
//! value of their `path` label. A label set is a struct so that a family cannot be given a
//! label it does not have.

use prometheus_client::encoding::EncodeLabelSet;

/// `method`, `route` (the template, `unmatched` when no route matched), `status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: String,
}

/// The two participation paths (docs/design.md §6).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ParticipationPath {
    Outbox,
    Sync,
}

impl ParticipationPath {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outbox => "outbox",
            Self::Sync => "sync",
        }
    }
}

/// `path`, and `code`: `CREATED` or the error code of the response.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub path: &'static str,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabels {
    pub path: &'static str,
}

/// `status`: `PENDING`, `PUBLISHED` or `DEAD`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: &'static str,
}

/// `consumer`, `result`: `applied`, `duplicate` or `dead_lettered`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerEventLabels {
    pub consumer: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabels {
    pub consumer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerPartitionLabels {
    pub consumer: &'static str,
    pub partition: i32,
}

/// `campaign`: the campaign's id.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CampaignLabels {
    pub campaign: i64,
}

/// `reason`: why a join's admission token was refused (`REQUIRED`, `INVALID`, `USED`, `EXPIRED`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// `kind`: which live control (`STOCK_CHANGED`, `PAUSED`, `RESUMED`, `CLOSED`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControlLabels {
    pub kind: &'static str,
}
