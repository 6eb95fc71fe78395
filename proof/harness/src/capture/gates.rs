//! Each gate in the run's Redis once settled: one entry per slot ([`Slot`]), so one per bucket
//! of a bucketed campaign (with its `bucket`) and one for any other campaign (bucket 0). Key
//! names and fields are the service's Lua scripts'.

use std::time::Duration;

use anyhow::Context;

use crate::{
    final_state::{BucketGate, Gate},
    slots::Slot,
};

pub async fn read(
    redis_url: &str,
    prefix: &str,
    slots: &[Slot],
) -> anyhow::Result<Vec<BucketGate>> {
    let client = redis::Client::open(redis_url)?;
    let mut c = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .context("connecting to Redis")??;
    let mut out = Vec::new();
    for &slot in slots {
        let key = |part: &str| slot.key(prefix, part);
        let stock: Option<i64> = redis::cmd("HGET")
            .arg(key("meta"))
            .arg("stock")
            .query_async(&mut c)
            .await?;
        let users: Vec<i64> = redis::cmd("SMEMBERS")
            .arg(key("users"))
            .query_async(&mut c)
            .await?;
        let returned: Vec<i64> = redis::cmd("SMEMBERS")
            .arg(key("returned"))
            .query_async(&mut c)
            .await?;
        let pending: i64 = redis::cmd("HLEN")
            .arg(key("pending"))
            .query_async(&mut c)
            .await?;
        out.push(BucketGate {
            bucket: slot.bucket_or_zero(),
            gate: Gate {
                campaign: slot.campaign,
                stock,
                users: Some(users),
                returned: Some(returned),
                pending: Some(pending),
            },
        });
    }
    Ok(out)
}
