//! The run's campaigns: `--campaigns` joined directly (`admission: OPEN`), every other one with
//! a `perUserLimit` of 1 and the rest with `--max-quantity`; then `--bucketed-campaigns`, open
//! too, each split into `--buckets` buckets (design §21), their limits alternating the same way;
//! then `--queued-campaigns` with a waiting room (`admission: QUEUE`, `--admission-rate`) and
//! `--max-quantity`, and `--bucketed-queued-campaigns` as those with `--buckets` buckets. Every one starts with `--stock`. Created through the admin API, as an
//! operator would.

use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use super::{options::RunOptions, workload::Plan};

/// What each campaign of the run is to be, in creation order.
pub fn plans(opts: &RunOptions) -> Vec<Plan> {
    let most = opts.max_quantity.max(1);
    // Every other campaign of a kind allows one unit a user, the rest several: the first
    // bucketed one asks several, so a join may lack more than one unit and steal them.
    let limit = |n: usize| if n % 2 == 1 { 1 } else { most };
    let open = (0..opts.campaigns).map(|n| Plan {
        per_user_limit: limit(n),
        queued: false,
        buckets: 1,
    });
    let bucketed = (0..opts.bucketed_campaigns).map(|n| Plan {
        per_user_limit: limit(n),
        queued: false,
        buckets: opts.buckets.clamp(1, 1024),
    });
    let queued = (0..opts.queued_campaigns).map(|_| Plan {
        per_user_limit: most,
        queued: true,
        buckets: 1,
    });
    let bucketed_queued = (0..opts.bucketed_queued_campaigns).map(|_| Plan {
        per_user_limit: most,
        queued: true,
        buckets: opts.buckets.clamp(1, 1024),
    });
    open.chain(bucketed)
        .chain(queued)
        .chain(bucketed_queued)
        .collect()
}

/// The creation request of campaign `n` as `plan` says. `buckets` is sent only above 1, so
/// the unbucketed campaigns are created exactly as before buckets existed.
fn body(opts: &RunOptions, n: usize, plan: Plan) -> serde_json::Value {
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
    if plan.buckets > 1 {
        body["buckets"] = json!(plan.buckets);
    }
    body
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
    let response = http
        .post(format!("{base}/api/v1/campaigns"))
        .bearer_auth(token)
        .json(&body(opts, n, plan))
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::model::bucket::home;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        opts: RunOptions,
    }

    fn options(args: &[&str]) -> RunOptions {
        let base = ["run", "--database-url", "mysql://u:p@127.0.0.1:1"];
        Cli::try_parse_from(base.iter().chain(args))
            .expect("the options parse")
            .opts
    }

    #[test]
    fn the_default_run_has_a_bucketed_campaign_of_16_among_the_open_and_one_among_the_queued() {
        let opts = options(&[]);
        let plans = plans(&opts);
        let kinds: Vec<(i64, bool, i64)> = plans
            .iter()
            .map(|p| (p.per_user_limit, p.queued, p.buckets))
            .collect();
        assert_eq!(
            kinds,
            [
                (3, false, 1),
                (1, false, 1),
                (3, false, 1),
                (3, false, 16),
                (3, true, 1),
                (3, true, 16)
            ]
        );
        let bucketed = body(&opts, 3, plans[3]);
        assert_eq!(bucketed["buckets"], 16);
        assert_eq!(bucketed["totalStock"], opts.stock);
        assert!(bucketed.get("admission").is_none(), "{bucketed}");
        let queued = body(&opts, 5, plans[5]);
        assert_eq!(queued["buckets"], 16);
        assert_eq!(queued["admission"], "QUEUE");
        for (n, plan) in plans.iter().enumerate().filter(|(n, _)| *n != 3 && *n != 5) {
            assert!(body(&opts, n, *plan).get("buckets").is_none());
        }
    }

    #[test]
    fn bucketed_campaigns_alternate_their_limits_and_take_the_bucket_count() {
        let opts = options(&[
            "--bucketed-campaigns",
            "2",
            "--buckets",
            "4",
            "--campaigns",
            "0",
        ]);
        let kinds: Vec<(i64, i64)> = plans(&opts)
            .iter()
            .filter(|p| !p.queued)
            .map(|p| (p.per_user_limit, p.buckets))
            .collect();
        assert_eq!(kinds, [(3, 4), (1, 4)]);
        assert!(Cli::try_parse_from(["run", "--database-url", "x", "--buckets", "1025"]).is_err());
    }

    /// The clients draw users uniformly from `1..=--users`: every bucket of the default run
    /// has a fair share of them, so every bucket's gate takes joins.
    #[test]
    fn the_default_users_home_in_every_bucket() {
        let opts = options(&[]);
        let mut per_bucket = vec![0_i64; usize::try_from(opts.buckets).unwrap_or(0)];
        for user in 1..=opts.users {
            per_bucket[usize::try_from(home(user, opts.buckets)).unwrap_or(0)] += 1;
        }
        let fair = opts.users / opts.buckets;
        assert!(per_bucket.iter().all(|&n| n > fair / 2), "{per_bucket:?}");
    }
}
