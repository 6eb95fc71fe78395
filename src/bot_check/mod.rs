//! The bot check at a campaign's door (docs/design.md §16 "Bots at the door"): a client shows
//! it passed before it is given a ticket (or before an `OPEN` campaign's join), where the
//! campaign asks for it. The provider is the service's (`BOT_CHECK`): the built-in proof of work
//! ([`pow`], ALTCHA's v2 scheme, its solutions accepted once; also what a campaign asks for when
//! `BOT_CHECK=off`), or a captcha provider's token checked with its `siteverify` call
//! ([`siteverify`]). Which campaigns ask is each one's choice, or the service's default
//! ([`choice`]). Every decision is counted; a refused client has nothing written for it.
//!
//! # Layout
//! - [`choice`]: which campaigns ask, each read from MySQL at most once a second.
//! - [`pow`]: challenges signed and solutions verified (`altcha`), each spent once in Redis.
//! - [`siteverify`]: the provider's call, its deadline and the fail-open or fail-closed choice.

pub mod choice;
pub mod pow;
pub mod siteverify;

use std::{sync::Arc, time::Instant};

use sea_orm::DbErr;

use crate::{
    config::{BotCheckMode, BotCheckSettings},
    db::Db,
    gate::Gate,
    telemetry::metrics::{registry::ReasonLabels, Metrics},
};

/// Longest response accepted (an ALTCHA payload is about 600 characters, a Turnstile token
/// about 2,000).
pub const MAX_RESPONSE_LEN: usize = 4_096;

/// The results `firstcome_bot_checks_total` counts.
const RESULTS: [&str; 7] = [
    "passed",
    "missing",
    "invalid",
    "expired",
    "reused",
    "unavailable",
    "let_through",
];

/// Every result's series from the start, at 0, whatever the mode (a rate over it is defined at
/// once, and the metric exists where the check is off).
fn zeroed(metrics: &Metrics) {
    for reason in RESULTS {
        metrics
            .bot_checks
            .get_or_create(&ReasonLabels { reason })
            .inc_by(0);
    }
}

/// Why a client did not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BotRefusal {
    #[error("this call needs a solved bot check (botCheck)")]
    Missing,
    #[error("the bot check's answer is not valid")]
    Invalid,
    #[error("the bot check's challenge expired; solve a new one")]
    Expired,
    #[error("this bot check's answer was used already; solve a new one")]
    Reused,
    /// The provider (or Redis, for the single use) did not answer, and the check fails closed.
    #[error("the bot check could not be made now")]
    Unavailable,
}

impl BotRefusal {
    /// The metric label and the reason the refusal's message names.
    pub fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
            Self::Reused => "reused",
            Self::Unavailable => "unavailable",
        }
    }
}

/// A check that let the client through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passed {
    /// The campaign does not ask for the check.
    NotAsked,
    /// The client passed.
    Passed,
    /// The provider did not answer and `BOT_CHECK_FAIL_OPEN` lets the client through.
    LetThrough,
}

/// The configured check; cheap to share.
#[derive(Clone)]
pub struct BotCheck {
    inner: Arc<Inner>,
}

struct Inner {
    mode: BotCheckMode,
    choices: choice::Choices,
    pow: Option<pow::ProofOfWork>,
    siteverify: Option<siteverify::SiteVerify>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for BotCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotCheck")
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

impl BotCheck {
    /// The check of `settings`; the proof of work signs its challenges with `key` (derived from
    /// `ADMISSION_SECRET`, so every instance verifies every other's) and spends solutions in
    /// `gate`'s Redis; the campaigns' choices are read from `db`.
    pub fn new(
        settings: &BotCheckSettings,
        key: &[u8],
        (gate, db): (Gate, Db),
        metrics: Arc<Metrics>,
    ) -> Self {
        zeroed(&metrics);
        // With no provider named, the proof of work is there for the campaigns that ask.
        let pow = matches!(settings.mode, BotCheckMode::Pow | BotCheckMode::Off)
            .then(|| pow::ProofOfWork::new(settings, key, gate));
        let on = settings.mode != BotCheckMode::Off;
        let defaults = choice::Defaults {
            room: on,
            join: on && settings.on_join,
        };
        let siteverify = settings
            .siteverify()
            .map(|url| siteverify::SiteVerify::new(settings, url));
        Self {
            inner: Arc::new(Inner {
                mode: settings.mode,
                choices: choice::Choices::new(db, defaults),
                pow,
                siteverify,
                metrics,
            }),
        }
    }

    pub fn mode(&self) -> BotCheckMode {
        self.inner.mode
    }

    /// Whether `campaign_id`'s door (its room's queue, or an `OPEN` campaign's joins) asks for
    /// the check now; `false` for a campaign that does not exist.
    pub async fn asks(&self, campaign_id: i64) -> Result<bool, DbErr> {
        self.inner.choices.asks(campaign_id).await
    }

    /// The campaigns' choices: the service's defaults, and the live control's change.
    pub fn choices(&self) -> &choice::Choices {
        &self.inner.choices
    }

    /// Whether challenges are given out (the check is the proof of work).
    pub fn challenge_offered(&self) -> bool {
        self.inner.pow.is_some()
    }

    /// A fresh proof-of-work challenge for `campaign_id`, when that is the check.
    pub fn challenge(&self, campaign_id: i64) -> Option<altcha::Challenge> {
        (self.inner.pow.as_ref()).map(|pow| pow.challenge(campaign_id))
    }

    /// Whether the client that sent `response` (the ALTCHA payload of a challenge of
    /// `campaign_id`, or the provider's token) passes, when the campaign asks for the check
    /// ([`Passed::NotAsked`] when it does not); `client_ip` goes to the provider as `remoteip`.
    /// Counted either way.
    pub async fn pass(
        &self,
        campaign_id: i64,
        response: Option<&str>,
        client_ip: Option<&str>,
    ) -> Result<Passed, BotRefusal> {
        if !self.asked(campaign_id).await? {
            return Ok(Passed::NotAsked);
        }
        self.check(campaign_id, response, client_ip).await
    }

    /// [`Self::asks`] at a door: a choice MySQL could not give fails closed, as the check
    /// itself does (`BOT_CHECK_UNAVAILABLE`).
    pub async fn asked(&self, campaign_id: i64) -> Result<bool, BotRefusal> {
        self.asks(campaign_id).await.map_err(|e| {
            tracing::warn!(campaign_id, error = %e, "could not read whether the campaign asks for the bot check");
            BotRefusal::Unavailable
        })
    }

    /// The check itself, for a door that knows its campaign asks for it; counted.
    pub async fn check(
        &self,
        campaign_id: i64,
        response: Option<&str>,
        client_ip: Option<&str>,
    ) -> Result<Passed, BotRefusal> {
        let started = Instant::now();
        let decided = match response.map(str::trim).filter(|r| !r.is_empty()) {
            None => Err(BotRefusal::Missing),
            Some(r) if r.len() > MAX_RESPONSE_LEN => Err(BotRefusal::Invalid),
            Some(r) => match (&self.inner.pow, &self.inner.siteverify) {
                (Some(pow), _) => pow.verify(campaign_id, r).await.map(|()| Passed::Passed),
                (None, Some(site)) => site.verify(r, client_ip).await,
                (None, None) => Err(BotRefusal::Unavailable),
            },
        };
        let m = &self.inner.metrics;
        m.bot_check_duration
            .observe(started.elapsed().as_secs_f64());
        let reason = match decided {
            Ok(Passed::LetThrough) => "let_through",
            Ok(_) => "passed",
            Err(refusal) => refusal.label(),
        };
        m.bot_checks.get_or_create(&ReasonLabels { reason }).inc();
        decided
    }
}
