//! The run's campaigns: `--campaigns` joined directly (`admission: OPEN`), every other one with
//! a `perUserLimit` of 1 and the rest with `--max-quantity`, then `--queued-campaigns` with a
//! waiting room (`admission: QUEUE`, `--admission-rate`) and `--max-quantity`. Created through
//! the admin API, as an operator would.

use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use super::{options::RunOptions, workload::Plan};

/// What each campaign of the run is to be, in creation order.
pub fn plans(opts: &RunOptions) -> Vec<Plan> {
    let most = opts.max_quantity.max(1);
    let open = (0..opts.campaigns).map(|n| Plan {
        per_user_limit: if n % 2 == 1 { 1 } else { most },
        queued: false,
    });
    let queued = (0..opts.queued_campaigns).map(|_| Plan {
        per_user_limit: most,
        queued: true,
    });
    open.chain(queued).collect()
}

/// Creates campaign `n` as `plan` says; returns its id.
pub async fn create(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    opts: &RunOptions,
    n: usize,
    plan: Plan,
) -> anyhow::Result<i64> {
    let mut body = json!({
        "name": format!("proof {n}"),
        "totalStock": opts.stock,
        "perUserLimit": plan.per_user_limit,
        "rewardPoints": opts.reward_points,
        "confirmWithinSeconds": opts.confirm_within,
    });
    if plan.queued {
        body["admission"] = json!("QUEUE");
        body["admissionRatePerSecond"] = json!(opts.admission_rate.clamp(1, 10_000));
    }
    let response = http
        .post(format!("{base}/api/v1/campaigns"))
        .bearer_auth(token)
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .context("creating a campaign")?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    anyhow::ensure!(
        status.is_success(),
        "creating a campaign: {status} {answer}"
    );
    answer
        .get("id")
        .and_then(serde_json::Value::as_i64)
        .context("the created campaign has no id")
}
