//! Per-client limits at the door (docs/design.md §16): a token bucket per user and per client IP,
//! shared by every instance through Redis (`gate::token_bucket`), answered with 429 `RATE_LIMITED`
//! and an honest `Retry-After` (waiting that long finds a token).
//!
//! Configured rates apply everywhere: the IP's to every public call ([`RateLimits::refuse_ip`],
//! at the door), the user's to every call that names a user. Unset rates apply only to the calls
//! of a campaign with a waiting room (its queue, polls and joins), at the defaults of
//! `config::rate_limit`. A limiter that cannot reach Redis lets the call through: the gate behind
//! it then answers for itself. Each such call is counted (`firstcome_rate_limit_unavailable_total`)
//! and a WARN line says so, at most once per [`UNAVAILABLE_LOG_EVERY`].
//!
//! The client IP is the one `http::client_ip` resolved (the peer, or a trusted proxy's word).

use std::{sync::Arc, time::Duration};

use poem::{IntoResponse, Request, Response};

use crate::{
    campaign::CampaignCache,
    config::{rate_limit::Limit, RateLimitSettings},
    gate::{token_bucket::TokenBucket, Gate},
    http::{client_ip, error::ApiError},
    refusal::RefusalCounter,
    telemetry::{metrics::Metrics, Throttle},
};

/// The least time between two WARN lines about a limiter that cannot reach Redis (each call is
/// counted in the metric all the same).
pub const UNAVAILABLE_LOG_EVERY: Duration = Duration::from_secs(10);

/// Cheap to clone; shared by the middleware and the resources that name a user.
#[derive(Clone)]
pub struct RateLimits {
    gate: Gate,
    /// The participation path's cache: whether a campaign has a waiting room.
    campaigns: Arc<CampaignCache>,
    settings: Arc<RateLimitSettings>,
    /// Where the middleware counts the joins it refuses (docs/design.md §20).
    refusals: Arc<RefusalCounter>,
    metrics: Arc<Metrics>,
    /// The WARN about an unreachable Redis, at most once per [`UNAVAILABLE_LOG_EVERY`].
    unavailable_logged: Arc<Throttle>,
}

impl RateLimits {
    pub fn new(
        gate: Gate,
        campaigns: Arc<CampaignCache>,
        settings: &RateLimitSettings,
        refusals: Arc<RefusalCounter>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            gate,
            campaigns,
            settings: Arc::new(settings.clone()),
            refusals,
            metrics,
            unavailable_logged: Arc::new(Throttle::new(UNAVAILABLE_LOG_EVERY)),
        }
    }

    /// The limits of a call acting for `user_id` on `campaign_id`: the user's bucket, and the
    /// IP's where the middleware did not take from it already (a waiting room's default).
    pub async fn check(
        &self,
        req: &Request,
        campaign_id: i64,
        user_id: i64,
    ) -> Result<(), ApiError> {
        let queued = self.queued(campaign_id).await;
        self.user_bucket(queued, user_id).await?;
        self.ip_bucket(queued, req).await
    }

    /// The user's bucket on a call of `campaign_id`.
    pub async fn check_user_in(&self, campaign_id: i64, user_id: i64) -> Result<(), ApiError> {
        let queued = self.queued(campaign_id).await;
        self.user_bucket(queued, user_id).await
    }

    /// The IP's bucket on a call of `campaign_id`, unless the middleware took from it already.
    pub async fn check_ip(&self, req: &Request, campaign_id: i64) -> Result<(), ApiError> {
        let queued = self.queued(campaign_id).await;
        self.ip_bucket(queued, req).await
    }

    async fn user_bucket(&self, queued: bool, user_id: i64) -> Result<(), ApiError> {
        match self.settings.user(queued) {
            Some(limit) => self.take(TokenBucket::User(user_id), limit).await,
            None => Ok(()),
        }
    }

    async fn ip_bucket(&self, queued: bool, req: &Request) -> Result<(), ApiError> {
        if self.settings.ip_everywhere().is_some() {
            return Ok(());
        }
        match self.settings.ip(queued) {
            Some(limit) => {
                let ip = self.client_ip(req);
                self.take(TokenBucket::Ip(&ip), limit).await
            }
            None => Ok(()),
        }
    }

    /// A call acting for `user_id` outside a campaign (rewards): only a configured user rate.
    pub async fn check_user(&self, user_id: i64) -> Result<(), ApiError> {
        match self.settings.user(false) {
            Some(limit) => self.take(TokenBucket::User(user_id), limit).await,
            None => Ok(()),
        }
    }

    /// Whether the campaign has a waiting room, as this instance's cache knows it. A campaign not
    /// cached yet counts as without one: the call's service loads it right after, so only an
    /// instance's first call of a campaign goes unlimited, and a flood of unknown ids costs
    /// MySQL no extra lookup here.
    async fn queued(&self, campaign_id: i64) -> bool {
        self.campaigns
            .cached(campaign_id)
            .await
            .is_some_and(|campaign| campaign.admission.queued())
    }

    async fn take(&self, bucket: TokenBucket<'_>, limit: Limit) -> Result<(), ApiError> {
        match self.gate.take_token(bucket, limit).await {
            Ok(None) => Ok(()),
            Ok(Some(wait)) => Err(ApiError::rate_limited(retry_after(wait))),
            Err(e) => {
                self.metrics.rate_limit_unavailable.inc();
                if let Some(calls) = self.unavailable_logged.hit() {
                    tracing::warn!(error = %e, calls, "The rate limiter could not reach Redis; calls go through unlimited until it can (firstcome_rate_limit_unavailable_total counts them).");
                }
                Ok(())
            }
        }
    }

    /// The client's key: its address, or its IPv6 /64 (`http::client_ip`).
    fn client_ip(&self, req: &Request) -> String {
        client_ip::of(req).key()
    }
}

/// Whole seconds to wait, rounded up (at least 1): waiting that long finds a token.
pub(crate) fn retry_after(wait: Duration) -> u32 {
    u32::try_from(wait.as_millis().div_ceil(1000).max(1)).unwrap_or(u32::MAX)
}

/// Whether `req` is a public call: the API's, less the admin's (their token is the limit), and
/// `/metrics`, whose exposition costs a little CPU each however it is answered.
/// `/health/ready` is not: its pings run once a second whoever asks (`api::readiness`), and the
/// limiter is itself a Redis round trip per call.
fn public(req: &Request) -> bool {
    let path = req.uri().path();
    path == crate::http::door::PAGE_METRICS
        || path.starts_with("/api/")
            && !path.starts_with("/api/v1/admin/")
            && !(req.method() == poem::http::Method::POST
                && path.trim_end_matches('/') == "/api/v1/campaigns")
}

/// The campaign a join names (`POST /api/v1/campaigns/{id}/participations[/sync]`), if `req` is
/// one; a join refused at the door counts among its campaign's refusals.
fn joined_campaign(req: &Request) -> Option<i64> {
    if req.method() != poem::http::Method::POST {
        return None;
    }
    let rest = req.uri().path().strip_prefix("/api/v1/campaigns/")?;
    let (id, tail) = rest.split_once('/')?;
    matches!(tail, "participations" | "participations/sync")
        .then(|| id.parse().ok())
        .flatten()
        .filter(|id| *id > 0)
}

impl RateLimits {
    /// With a configured `RATE_LIMIT_IP_PER_SECOND`, every public call takes a token from its
    /// client IP's bucket before it is served (`http::door`): the 429 when the bucket is empty.
    pub async fn refuse_ip(&self, req: &Request) -> Option<Response> {
        let limit = self.settings.ip_everywhere().filter(|_| public(req))?;
        let ip = self.client_ip(req);
        let refused = self.take(TokenBucket::Ip(&ip), limit).await.err()?;
        if let Some(campaign_id) = joined_campaign(req) {
            self.refusals
                .record_code(campaign_id, &refused.code().name());
        }
        Some(refused.into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_names_its_campaign_and_nothing_else_does() {
        let req = |method: &str, path: &str| {
            Request::builder()
                .method(method.parse().expect("a method"))
                .uri(path.parse().expect("a path"))
                .finish()
        };
        assert_eq!(
            joined_campaign(&req("POST", "/api/v1/campaigns/7/participations")),
            Some(7)
        );
        assert_eq!(
            joined_campaign(&req("POST", "/api/v1/campaigns/7/participations/sync")),
            Some(7)
        );
        assert_eq!(
            joined_campaign(&req("GET", "/api/v1/campaigns/7/participations")),
            None
        );
        assert_eq!(
            joined_campaign(&req("POST", "/api/v1/campaigns/7/queue")),
            None
        );
        assert_eq!(
            joined_campaign(&req("POST", "/api/v1/campaigns/0/participations")),
            None
        );
        assert_eq!(
            joined_campaign(&req("POST", "/api/v1/campaigns/x/participations")),
            None
        );
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after(Duration::from_millis(1)), 1);
        assert_eq!(retry_after(Duration::from_millis(1_000)), 1);
        assert_eq!(retry_after(Duration::from_millis(1_001)), 2);
        assert_eq!(retry_after(Duration::ZERO), 1);
    }
}
