//! The run's campaigns: `--campaigns` joined directly (`admission: OPEN`), every other one with
//! a `perUserLimit` of 1 and the rest with `--max-quantity`; then `--bucketed-campaigns`, open
//! too, each split into `--buckets` buckets (design §21), their limits alternating the same way;
//! then `--queued-campaigns` with a waiting room (`admission: QUEUE`, `--admission-rate`) and
//! `--max-quantity`, and `--bucketed-queued-campaigns` as those with `--buckets` buckets. Every one starts with `--stock`. Created through the admin API, as an
//! operator would.

use std::{collections::HashMap, time::Duration};

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
        ..Plan::default()
    });
    let bucketed = (0..opts.bucketed_campaigns).map(|n| Plan {
        per_user_limit: limit(n),
        queued: false,
        buckets: opts.buckets.clamp(1, 1024),
        ..Plan::default()
    });
    let queued = (0..opts.queued_campaigns).map(|_| Plan {
        per_user_limit: most,
        queued: true,
        buckets: 1,
        ..Plan::default()
    });
    let bucketed_queued = (0..opts.bucketed_queued_campaigns).map(|_| Plan {
        per_user_limit: most,
        queued: true,
        buckets: opts.buckets.clamp(1, 1024),
        ..Plan::default()
    });
    open.chain(bucketed)
        .chain(queued)
        .chain(bucketed_queued)
        .chain(grouped(opts))
        .collect()
}

/// What the run created: each campaign's id and plan, in creation order, the stock each was
/// created with, and the groups' ids (a plan's `group` indexes them).
pub struct Created {
    pub plans: Vec<(i64, Plan)>,
    pub initial: HashMap<i64, i64>,
    pub groups: Vec<i64>,
}

impl Created {
    /// A campaign's group id, if it is in one.
    pub fn group_of(&self, plan: &Plan) -> Option<i64> {
        plan.group.and_then(|g| self.groups.get(g).copied())
    }
}

/// Creates the run's groups, then its campaigns, through the admin API of `base`.
pub async fn create_all(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    opts: &RunOptions,
) -> anyhow::Result<Created> {
    let mut groups = Vec::new();
    for (g, buckets) in group_buckets(opts).into_iter().enumerate() {
        groups.push(create_group(http, base, token, opts, (g, buckets)).await?);
    }
    let mut created = Created {
        plans: Vec::new(),
        initial: HashMap::new(),
        groups,
    };
    for (n, plan) in plans(opts).into_iter().enumerate() {
        let id = create(http, base, token, opts, (n, plan), &created.groups).await?;
        let stock = if plan.group.is_some() {
            opts.group_stock
        } else {
            opts.stock
        };
        created.initial.insert(id, stock);
        created.plans.push((id, plan));
    }
    Ok(created)
}

/// Each group's buckets, in creation order: `--groups` of one, then `--bucketed-groups`.
pub fn group_buckets(opts: &RunOptions) -> Vec<i64> {
    let plain = std::iter::repeat_n(1, opts.groups);
    let bucketed = std::iter::repeat_n(opts.group_buckets.clamp(1, 1024), opts.bucketed_groups);
    plain.chain(bucketed).collect()
}

/// The grouped campaigns (design §22): `--group-campaigns` per group, the group's limit as
/// their own (a single join asks up to it), the first of each without a confirmation window.
fn grouped(opts: &RunOptions) -> impl Iterator<Item = Plan> + '_ {
    let buckets = group_buckets(opts);
    (0..buckets.len()).flat_map(move |g| {
        let b = buckets[g];
        (0..opts.group_campaigns).map(move |n| Plan {
            per_user_limit: opts.group_limit.max(1),
            queued: false,
            buckets: b,
            group: Some(g),
            no_window: n == 0,
        })
    })
}

/// Creates group `g` with `buckets`; returns its id.
pub async fn create_group(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    opts: &RunOptions,
    (g, buckets): (usize, i64),
) -> anyhow::Result<i64> {
    let body = json!({
        "name": format!("proof group {g}"),
        "perUserLimit": opts.group_limit.max(1),
        "buckets": buckets,
    });
    post_for_id(
        http,
        &format!("{base}/api/v1/groups"),
        token,
        &body,
        "a group",
    )
    .await
}

/// The creation request of campaign `n` as `plan` says. `buckets` is sent only above 1, so
/// the unbucketed campaigns are created exactly as before buckets existed.
fn body(opts: &RunOptions, n: usize, plan: Plan, groups: &[i64]) -> serde_json::Value {
    let grouped = plan.group.and_then(|g| groups.get(g));
    let mut body = json!({
        "name": format!("proof {n}"),
        "totalStock": if grouped.is_some() { opts.group_stock } else { opts.stock },
        "perUserLimit": plan.per_user_limit,
        "rewardPoints": opts.reward_points,
        "confirmWithinSeconds": if plan.no_window { 0 } else { opts.confirm_within },
    });
    if let Some(group) = grouped {
        body["groupId"] = json!(group);
    }
    if plan.queued {
        body["admission"] = json!("QUEUE");
        body["admissionRatePerSecond"] = json!(opts.admission_rate.clamp(1, 10_000));
        if opts.offer_seconds > 0 {
            body["offerSeconds"] = json!(opts.offer_seconds.clamp(1, 86_400));
        }
    }
    // A grouped campaign takes its group's buckets.
    if plan.buckets > 1 && grouped.is_none() {
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
    (n, plan): (usize, Plan),
    groups: &[i64],
) -> anyhow::Result<i64> {
    let body = body(opts, n, plan, groups);
    let url = format!("{base}/api/v1/campaigns");
    post_for_id(http, &url, token, &body, "a campaign").await
}

/// Creates the burst campaign ([`super::burst`]): `--burst-stock` units over `--burst-buckets`
/// buckets, one unit a user, wins final at once. `None` without a burst.
pub async fn create_burst(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    opts: &RunOptions,
) -> anyhow::Result<Option<(i64, Plan)>> {
    if opts.burst_users <= 0 || opts.burst_stock <= 0 {
        return Ok(None);
    }
    let plan = Plan {
        per_user_limit: 1,
        buckets: opts.burst_buckets.clamp(1, 1024),
        no_window: true,
        ..Plan::default()
    };
    let mut body = json!({
        "name": "proof burst",
        "totalStock": opts.burst_stock,
        "perUserLimit": 1,
        "rewardPoints": opts.reward_points,
        "confirmWithinSeconds": 0,
    });
    if plan.buckets > 1 {
        body["buckets"] = json!(plan.buckets);
    }
    let url = format!("{base}/api/v1/campaigns");
    let id = post_for_id(http, &url, token, &body, "the burst campaign").await?;
    Ok(Some((id, plan)))
}

/// An admin's creation request; answers the created thing's id.
async fn post_for_id(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &serde_json::Value,
    what: &str,
) -> anyhow::Result<i64> {
    let response = http
        .post(url)
        .bearer_auth(token)
        .json(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("creating {what}"))?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "creating {what}: {status} {answer}");
    answer
        .get("id")
        .and_then(serde_json::Value::as_i64)
        .with_context(|| format!("the created {what} has no id"))
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
        let opts = options(&["--groups", "0", "--bucketed-groups", "0"]);
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
        let bucketed = body(&opts, 3, plans[3], &[]);
        assert_eq!(bucketed["buckets"], 16);
        assert_eq!(bucketed["totalStock"], opts.stock);
        assert!(bucketed.get("admission").is_none(), "{bucketed}");
        let queued = body(&opts, 5, plans[5], &[]);
        assert_eq!(queued["buckets"], 16);
        assert_eq!(queued["admission"], "QUEUE");
        for (n, plan) in plans.iter().enumerate().filter(|(n, _)| *n != 3 && *n != 5) {
            assert!(body(&opts, n, *plan, &[]).get("buckets").is_none());
        }
    }

    #[test]
    fn the_default_run_has_two_groups_of_three_small_campaigns_the_first_without_a_window() {
        let opts = options(&[]);
        let plans = plans(&opts);
        let grouped: Vec<&Plan> = plans.iter().filter(|p| p.group.is_some()).collect();
        assert_eq!(grouped.len(), 6);
        assert!(grouped[..3]
            .iter()
            .all(|p| p.group == Some(0) && p.buckets == 1));
        assert!(grouped[3..]
            .iter()
            .all(|p| p.group == Some(1) && p.buckets == 4));
        assert!(grouped.iter().all(|p| !p.queued));
        assert_eq!(group_buckets(&opts), [1, 4]);
        // A grouped campaign takes its group's buckets: none sent with it.
        assert!(body(&opts, 9, *grouped[3], &[42, 43])
            .get("buckets")
            .is_none());
        assert_eq!(body(&opts, 9, *grouped[3], &[42, 43])["groupId"], 43);
        let first = body(&opts, 6, *grouped[0], &[42]);
        assert_eq!(first["groupId"], 42);
        assert_eq!(first["confirmWithinSeconds"], 0);
        assert_eq!(first["totalStock"], opts.group_stock);
        let second = body(&opts, 7, *grouped[1], &[42]);
        assert_eq!(second["confirmWithinSeconds"], opts.confirm_within);
        assert!(second.get("buckets").is_none());
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
            "--groups",
            "0",
            "--bucketed-groups",
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
