//! The instances' heartbeats and mailboxes in Redis, for one writer per campaign (docs/design.md
//! §23; `write::writer` decides what travels).
//!
//! - `<prefix>writers`: a hash, instance id → the epoch milliseconds of its last heartbeat.
//! - `<prefix>{i:<id>}:inbox`: the wins other instances hand to this one to write.
//! - `<prefix>{i:<id>}:replies`: the outcomes of the wins this one handed over.
//! - `<prefix>{i:<id>}:m:<origin>:<ticket>`: a handed-over win's mark, `taken` by the writer or
//!   `back` with its origin, whichever came first (`lua/handover_take.lua`,
//!   `lua/handover_back.lua`): exactly one of them writes the win.
//!
//! Both lists of an instance share one hash tag, so one `BLMPOP` waits on both in a Redis
//! Cluster, and the writer's take script reads both. That wait holds its connection, so it has one of its own ([`MailboxWait`]); every
//! other call goes over the gate's multiplexed connection, bounded by `REDIS_TIMEOUT_MS`. A list
//! lives a minute past its last push: the mailbox of an instance gone for good empties itself.

use std::{collections::HashMap, sync::LazyLock, time::Duration};

use redis::Script;

use super::{
    connection::{RedisConn, RedisSetupError},
    scripts::{Gate, GateError},
};
use crate::config::RedisSettings;

/// One of an instance's two lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mailbox {
    /// Wins handed over to be written here.
    Inbox,
    /// Outcomes of the wins this instance handed over.
    Replies,
}

static TAKE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/handover_take.lua")));
static BACK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/handover_back.lua")));

/// How long a mailbox list outlives its last push.
const LIST_LIFE_MS: u64 = 60_000;

impl Gate {
    /// `<prefix>writers`.
    fn writers_key(&self) -> String {
        format!("{}writers", self.prefix)
    }

    /// `<prefix>{i:<instance>}:inbox` or `…:replies`.
    pub fn mailbox_key(&self, instance: &str, which: Mailbox) -> String {
        let list = match which {
            Mailbox::Inbox => "inbox",
            Mailbox::Replies => "replies",
        };
        format!("{}{{i:{instance}}}:{list}", self.prefix)
    }

    /// Writes `me`'s heartbeat (`now_ms`) and reads every instance's.
    pub async fn heartbeat(
        &self,
        me: &str,
        now_ms: i64,
    ) -> Result<HashMap<String, i64>, GateError> {
        let key = self.writers_key();
        self.query::<()>(redis::cmd("HSET").arg(&key).arg(me).arg(now_ms).to_owned())
            .await?;
        self.query(redis::cmd("HGETALL").arg(&key).to_owned()).await
    }

    /// Removes instances' heartbeats: this one's when it stops, and long-dead ones.
    pub async fn forget_instances(&self, ids: &[String]) -> Result<(), GateError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.query(
            redis::cmd("HDEL")
                .arg(self.writers_key())
                .arg(ids)
                .to_owned(),
        )
        .await
    }

    /// Appends `items` to `instance`'s list `which`, in order, in one call.
    pub async fn post(
        &self,
        instance: &str,
        which: Mailbox,
        items: &[String],
    ) -> Result<(), GateError> {
        if items.is_empty() {
            return Ok(());
        }
        let key = self.mailbox_key(instance, which);
        let mut pipe = redis::pipe();
        pipe.cmd("RPUSH").arg(&key).arg(items).ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(LIST_LIFE_MS).ignore();
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, pipe.query_async::<()>(&mut conn)).await {
            Ok(done) => Ok(done?),
            Err(_) => Err(GateError::Timeout(self.timeout)),
        }
    }

    /// `<prefix>{i:<writer>}:m:`: the prefix of the marks of the wins handed to `writer`.
    fn marks_prefix(&self, writer: &str) -> String {
        format!("{}{{i:{writer}}}:m:", self.prefix)
    }

    /// The items of `me`'s inbox this writer takes (`lua/handover_take.lua`): `popped` (its
    /// blocking wait's) and up to `more` others, each only if its origin has not taken it back;
    /// with them, up to `more` of `me`'s replies (one call reads both lists).
    pub async fn take_handed(
        &self,
        me: &str,
        popped: Vec<String>,
        more: usize,
        mark_life: Duration,
    ) -> Result<Taken, GateError> {
        let mut inv = TAKE.key(self.mailbox_key(me, Mailbox::Inbox));
        inv.key(self.mailbox_key(me, Mailbox::Replies))
            .arg(more)
            .arg(self.marks_prefix(me))
            .arg(u64::try_from(mark_life.as_millis()).unwrap_or(u64::MAX))
            .arg(popped);
        let (wins, replies) = self.run(inv).await?;
        Ok(Taken { wins, replies })
    }

    /// Takes back the win `item` (id `id`, `<origin>:<ticket>`) handed to `writer`
    /// (`lua/handover_back.lua`): whether it is the origin's to write now (`false`: the writer
    /// took it).
    pub async fn take_back(
        &self,
        (writer, id): (&str, &str),
        item: &str,
        mark_life: Duration,
    ) -> Result<bool, GateError> {
        let mut inv = BACK.key(self.mailbox_key(writer, Mailbox::Inbox));
        inv.key(format!("{}{id}", self.marks_prefix(writer)))
            .arg(item)
            .arg(u64::try_from(mark_life.as_millis()).unwrap_or(u64::MAX));
        let back: i64 = self.run(inv).await?;
        Ok(back == 1)
    }
}

/// What the writer's loop read of its mailbox in one call ([`Gate::take_handed`]).
#[derive(Debug, Default)]
pub struct Taken {
    /// The handed-over wins it takes, oldest first.
    pub wins: Vec<String>,
    /// Replies to this instance's own hand-overs, oldest first.
    pub replies: Vec<String>,
}

/// The blocking wait on an instance's mailbox, on a connection of its own.
pub struct MailboxWait {
    conn: RedisConn,
    /// `REDIS_TIMEOUT_MS`: a wait blocks for at most half of it, so it answers within it.
    timeout: Duration,
}

impl MailboxWait {
    /// Connects lazily, as the gate does.
    pub fn new(settings: &RedisSettings) -> Result<Self, RedisSetupError> {
        Ok(Self {
            conn: RedisConn::new(settings)?,
            timeout: settings.timeout,
        })
    }

    /// How long one [`MailboxWait::next`] blocks when both lists are empty.
    pub fn block(&self) -> Duration {
        (self.timeout / 2).min(Duration::from_millis(500))
    }

    /// Up to `count` items of the first of `keys` that has any (`BLMPOP`, Redis 7: the lists
    /// looked at in the order given): the key they came from and the items, oldest first;
    /// `None` when every list stayed empty for [`MailboxWait::block`].
    pub async fn next(
        &self,
        keys: &[String],
        count: usize,
    ) -> Result<Option<(String, Vec<String>)>, GateError> {
        let block = self.block().as_secs_f64().max(0.01);
        let cmd = redis::cmd("BLMPOP")
            .arg(block)
            .arg(keys.len())
            .arg(keys)
            .arg("LEFT")
            .arg("COUNT")
            .arg(count)
            .to_owned();
        let mut conn = self.conn.clone();
        let popped = cmd.query_async::<Option<(String, Vec<String>)>>(&mut conn);
        match tokio::time::timeout(self.timeout, popped).await {
            Ok(popped) => Ok(popped?),
            Err(_) => Err(GateError::Timeout(self.timeout)),
        }
    }
}
