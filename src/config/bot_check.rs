//! The `Bot check` settings (docs/design.md §16 "Bots at the door"): which check a client passes
//! before the waiting room issues it a ticket (and, if asked, before an `OPEN` campaign's join),
//! the proof-of-work's cost, and a captcha provider's `siteverify` call with its deadline and its
//! choice when the provider does not answer.

use std::time::Duration;

use clap::{builder::BoolishValueParser, ArgAction, Args};

use crate::config::{
    values::{millis, number, secret, siteverify_url},
    Secret,
};

/// The service's bot check provider, and whether rooms ask for it by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BotCheckMode {
    /// No check by default (the default); a campaign that asks gets the built-in proof of work.
    Off,
    /// The built-in proof of work, ALTCHA's v2 scheme: `GET /api/v1/campaigns/{id}/bot-check`.
    Pow,
    /// A Cloudflare Turnstile token, checked with its `siteverify` call.
    Turnstile,
    /// An hCaptcha token, checked with its `siteverify` call.
    Hcaptcha,
}

impl BotCheckMode {
    /// The provider's documented `siteverify` endpoint, for the captcha modes.
    pub fn default_siteverify_url(self) -> Option<&'static str> {
        match self {
            Self::Turnstile => Some("https://challenges.cloudflare.com/turnstile/v0/siteverify"),
            Self::Hcaptcha => Some("https://api.hcaptcha.com/siteverify"),
            Self::Off | Self::Pow => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Pow => "pow",
            Self::Turnstile => "turnstile",
            Self::Hcaptcha => "hcaptcha",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct BotCheckSettings {
    /// The check a client passes at a campaign's door where the campaign asks for it (its `botCheck`; without one, every waiting room unless `off`): `off` (no room asks by default; a campaign that asks gets `pow`), `pow` (the built-in proof of work, ALTCHA-compatible), `turnstile` or `hcaptcha` (the provider's token, checked with its siteverify call)
    #[arg(
        id = "BOT_CHECK",
        long = "bot-check",
        env,
        default_value = "off",
        value_enum
    )]
    pub mode: BotCheckMode,
    /// `pow`: PBKDF2-SHA256 iterations of one try; a client makes about 256 tries, the service one to verify (1–1000000)
    #[arg(id = "BOT_CHECK_COST", long = "bot-check-cost", env, default_value_t = 5_000,
          value_parser = number::<u32>(1..=1_000_000))]
    pub cost: u32,
    /// `pow`: how long a challenge may be solved and used; each solution is accepted once (10000–3600000)
    #[arg(id = "BOT_CHECK_CHALLENGE_TTL_MS", long = "bot-check-challenge-ttl-ms", env,
          default_value = "300000", value_parser = millis(10_000..=3_600_000))]
    pub challenge_ttl: Duration,
    /// Joins of `OPEN` campaigns (no waiting room) need the check too, as `botCheck` in the join's body, unless a campaign says otherwise (its `botCheck`)
    #[arg(id = "BOT_CHECK_ON_JOIN", long = "bot-check-on-join", env, default_value_t = false,
          action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub on_join: bool,
    /// `turnstile`/`hcaptcha`: the provider's secret key, sent with each siteverify call
    #[arg(id = "BOT_CHECK_SITEVERIFY_SECRET", long = "bot-check-siteverify-secret", env,
          hide_env_values = true, default_value = "", hide_default_value = true,
          value_parser = secret)]
    pub siteverify_secret: Secret,
    /// `turnstile`/`hcaptcha`: the siteverify URL; unset: the provider's documented one (https, or http on a loopback host)
    #[arg(id = "BOT_CHECK_SITEVERIFY_URL", long = "bot-check-siteverify-url", env,
          default_value = "", hide_default_value = true, value_parser = siteverify_url)]
    pub siteverify_url: std::option::Option<url::Url>,
    /// `turnstile`/`hcaptcha`: how long a siteverify call may take (100–30000)
    #[arg(id = "BOT_CHECK_SITEVERIFY_TIMEOUT_MS", long = "bot-check-siteverify-timeout-ms", env,
          default_value = "3000", value_parser = millis(100..=30_000))]
    pub siteverify_timeout: Duration,
    /// `turnstile`/`hcaptcha`: most siteverify calls in flight at once on an instance; a check past it waits for one to end within its deadline (1–10000)
    // Bounds what a flood of junk tokens can make the provider (and this instance's outbound
    // connections) carry; a check that finds no call free in time is one the provider did not
    // answer in time.
    #[arg(id = "BOT_CHECK_SITEVERIFY_MAX_IN_FLIGHT", long = "bot-check-siteverify-max-in-flight",
          env, default_value_t = 64, value_parser = number::<usize>(1..=10_000))]
    pub siteverify_max_in_flight: usize,
    /// `turnstile`/`hcaptcha`: when the provider does not answer in time, let the client through (`true`) or answer 503 (`false`, the default: fail closed)
    #[arg(id = "BOT_CHECK_FAIL_OPEN", long = "bot-check-fail-open", env, default_value_t = false,
          action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub fail_open: bool,
}

impl BotCheckSettings {
    /// The siteverify URL the captcha modes call.
    pub fn siteverify(&self) -> Option<url::Url> {
        self.siteverify_url.clone().or_else(|| {
            self.mode
                .default_siteverify_url()
                .and_then(|u| url::Url::parse(u).ok())
        })
    }

    /// A captcha mode needs the provider's secret.
    pub(super) fn check(&self) -> Result<(), crate::config::ConfigError> {
        let captcha = self.mode.default_siteverify_url().is_some();
        if captcha && self.siteverify_secret.expose().trim().is_empty() {
            return Err(crate::config::invalid(
                "BOT_CHECK_SITEVERIFY_SECRET",
                "",
                &format!("must be set with BOT_CHECK={}", self.mode.name()),
            ));
        }
        Ok(())
    }
}
