//! One writer per campaign (docs/design.md §23): the gate stays where
//! a join arrives (its refusals, most of a sale's requests, stay spread over the instances);
//! only a win's write travels, to the one instance that writes its campaign, so N instances
//! write a campaign in the batches of one and never wait on each other's row locks.
//!
//! - [`directory`]: which instance writes a campaign (heartbeats in Redis, rendezvous hashing).
//! - [`forward`]: the origin hands a win over and waits for its outcome; one that does not come
//!   in time is taken back, or looked for in MySQL until its deadline and then left to the
//!   reconciler.
//! - [`pump`]: the writer writes what it is handed (its lanes, as a local win's) and replies.
//! - [`wire`], [`post`]: what travels, and how it is posted in batches.
//!
//! Nothing in exactly-N, a key's order or the answers depends on there being one writer: a key
//! is one row, written under its lock by whoever writes, and two instances that disagree for a
//! moment on the writer both write, as every instance did before. Wins under a group's limit
//! (docs/design.md §22) stay where they were reserved.

pub mod directory;
pub mod forward;
mod post;
mod pump;
mod wire;

use std::{sync::Arc, time::Duration};

use sea_orm::DbErr;
use tokio::sync::Notify;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;
use uuid::Uuid;

use self::{
    directory::Directory,
    forward::{Forwarder, Handed},
    post::Poster,
};
use crate::{
    config::RedisSettings,
    db::{
        error::{self as db_error, DbErrorKind},
        Db,
    },
    gate::{entry::Entry, mailbox::MailboxWait, Gate},
    hooks::Hooks,
    shutdown::running,
    telemetry::metrics::{registry::ReasonLabels, Metrics},
    win::store,
    write::{
        error::WriteError,
        group_commit::GroupCommit,
        in_doubt::InDoubt,
        rows::{NewParticipation, Written},
    },
};

/// A win written on this instance: its campaign's group commit here.
pub struct LocalWrite {
    pub group_commit: Arc<GroupCommit>,
    /// The relay's wakeup: this instance's outbox has a new row.
    pub wakeup: Arc<Notify>,
    /// Where a taken-back win's refusal is checked, and whose statement deadline bounds a
    /// commit in doubt's verdict.
    pub db: Db,
    /// The test seam (`crate::hooks`): where a test holds a handed-over win's reply.
    pub hooks: Arc<dyn Hooks>,
}

impl LocalWrite {
    /// Writes `win` here; a deadlock victim (InnoDB rolled its transaction back: nothing was
    /// written) is tried once more.
    pub async fn write(&self, win: NewParticipation) -> Result<Written, WriteError> {
        let mut written = self.group_commit.write(win.clone()).await;
        if matches!(&written, Err(WriteError::Db(e)) if is_deadlock(e)) {
            written = self.group_commit.write(win).await;
        }
        if written.is_ok() {
            self.wakeup.notify_one();
        }
        written
    }

    /// A win taken back from its writer, written here. The take-back rests on the win's mark,
    /// which is as durable as Redis: a Redis that lost it (a restart, a failover before the
    /// replica had it) lets this instance take back a win its writer had taken and written, the
    /// writer's answer lost with it. MySQL then refuses this second write (the user's key, or
    /// the stock that win took), so a refusal is checked against the user's row: one carrying
    /// this win's event id is this very win, and the join is answered from it. A check MySQL
    /// does not answer leaves the win in doubt (503; its reservation is the reconciler's).
    async fn write_taken_back(&self, win: NewParticipation) -> Result<Written, WriteError> {
        let (entry, event_id) = (win.entry, win.event_id);
        let refusal = match self.write(win).await {
            Err(e) if !matches!(e, WriteError::InDoubt(_) | WriteError::Unanswered) => e,
            written => return written,
        };
        match committed(&self.db, &entry, event_id).await {
            Ok(Some(written)) => {
                tracing::warn!(campaign_id = entry.campaign_id, user_id = entry.user_id, %refusal,
                    "A win taken back from its writer had been written there (Redis lost its mark); answered as written.");
                Ok(written)
            }
            Ok(None) => Err(refusal),
            Err(e) => {
                let key = (entry.campaign_id, entry.user_id);
                Err(WriteError::InDoubt(InDoubt::decided(e, key, None)))
            }
        }
    }

    /// A handed-over win, written here; a commit in doubt settled first (see the module's text).
    pub(super) async fn write_handed_over(
        &self,
        win: NewParticipation,
    ) -> Result<Written, WriteError> {
        let entry = win.entry;
        let written = self.write(win).await;
        let Err(WriteError::InDoubt(doubt)) = &written else {
            return written;
        };
        let (campaign_id, user_id) = (entry.campaign_id, entry.user_id);
        let verdict = (doubt)
            .verdict(campaign_id, user_id, self.db.statement_timeout())
            .await;
        // The win's own verdict crosses (none: not known within the statement deadline; the
        // settlement goes on here).
        let error = doubt.error().clone();
        Err(WriteError::InDoubt(InDoubt::decided(
            error,
            (campaign_id, user_id),
            verdict,
        )))
    }
}

/// The win of `entry` whose event is `event_id`, as MySQL has it committed: the user's row when
/// it carries that event id (a plain read sees committed rows only), else `None`.
pub(super) async fn committed(
    db: &Db,
    entry: &Entry,
    event_id: Uuid,
) -> Result<Option<Written>, DbErr> {
    let found = store::find(db, entry.campaign_id, entry.user_id).await?;
    Ok(found
        .filter(|f| f.is_event(event_id))
        .map(|f| Written::stored(&f)))
}

fn is_deadlock(e: &DbErr) -> bool {
    db_error::kind(e) == DbErrorKind::Deadlock
}

/// Where a win is written: here, or by its campaign's writer.
pub struct Writers {
    local: Arc<LocalWrite>,
    /// `None` with `WRITER_PER_CAMPAIGN=false`: every win is written where it was reserved.
    route: Option<Route>,
}

struct Route {
    gate: Gate,
    directory: Arc<Directory>,
    forwarder: Arc<Forwarder>,
    poster: Poster,
}

impl Writers {
    /// `per_campaign`: `WRITER_PER_CAMPAIGN`; `reservation_timeout`: `RESERVATION_TIMEOUT_MS`
    /// (a win's mark outlives twice it and a minute: any moment either side may look at it).
    /// Must be called within the runtime (it starts the posting task).
    pub fn new(
        local: LocalWrite,
        gate: Gate,
        (per_campaign, reservation_timeout): (bool, Duration),
        metrics: Arc<Metrics>,
    ) -> Self {
        for reason in ["answered", "taken_back", "found_written", "unanswered"] {
            let labels = ReasonLabels { reason };
            metrics.writer_handovers.get_or_create(&labels).inc_by(0);
        }
        let late = local.db.statement_timeout() + Duration::from_secs(1);
        let mark_life = reservation_timeout * 2 + Duration::from_secs(60);
        let route = per_campaign.then(|| {
            let me: Arc<str> = Uuid::now_v7().simple().to_string().into();
            let poster = Poster::start(gate.clone());
            let forwarder = Forwarder::new(
                (gate.clone(), poster.clone(), local.db.clone()),
                me.clone(),
                (late, mark_life),
                metrics,
            );
            Route {
                directory: Arc::new(Directory::new(me)),
                forwarder: Arc::new(forwarder),
                poster,
                gate,
            }
        });
        Self {
            local: Arc::new(local),
            route,
        }
    }

    /// Writes `win`: handed to its campaign's writer when that is another live instance, else
    /// here (also when the writer did not take it in time).
    pub async fn write(&self, win: NewParticipation) -> Result<Written, WriteError> {
        if let Some(route) = &self.route {
            let grouped = win.group.is_some() || win.entry.group.is_some();
            let now = std::time::Instant::now();
            let writer = (!grouped)
                .then(|| route.directory.writer_of(win.entry.campaign_id, now))
                .flatten();
            if let Some(writer) = writer {
                return match route.forwarder.write(&writer, &win).await {
                    Handed::Answer(answer) => answer,
                    Handed::Back => self.local.write_taken_back(win).await,
                };
            }
        }
        self.local.write(win).await
    }

    /// This instance's group commit (its purchases are written there, never handed over).
    pub fn group_commit(&self) -> &Arc<GroupCommit> {
        &self.local.group_commit
    }

    /// The instance that writes `campaign_id` as this one sees it now (`None`: routing is off).
    pub fn writer_seen(&self, campaign_id: i64) -> Option<Arc<str>> {
        let directory = &self.route.as_ref()?.directory;
        let now = std::time::Instant::now();
        Some(
            directory
                .writer_of(campaign_id, now)
                .unwrap_or_else(|| directory.me().clone()),
        )
    }

    /// This instance's id among the writers (`None`: routing is off).
    pub fn me(&self) -> Option<Arc<str>> {
        Some(self.route.as_ref()?.directory.me().clone())
    }

    /// Starts the heartbeat and the mailbox's loop, which stop with `stop` (nothing when
    /// `WRITER_PER_CAMPAIGN` is off). Without its own Redis connection for the mailbox this
    /// instance writes no heartbeat: nobody hands it wins, and it writes its own.
    pub fn spawn(&self, tasks: &TaskTracker, redis: &RedisSettings, stop: &CancellationToken) {
        let Some(route) = &self.route else {
            return;
        };
        let wait = match MailboxWait::new(redis) {
            Ok(wait) => wait,
            Err(e) => {
                tracing::error!(error = %e, "No Redis connection for this instance's mailbox; it writes every campaign's wins itself.");
                return;
            }
        };
        let me = route.directory.me().clone();
        tracing::info!(instance = %me, "Writing a heartbeat; campaigns are written by one instance each.");
        tasks.spawn(running::track(
            "writer heartbeat",
            directory::run(route.directory.clone(), route.gate.clone(), stop.clone())
                .instrument(tracing::info_span!("writer_heartbeat")),
        ));
        let pump = pump::Pump {
            gate: route.gate.clone(),
            wait,
            forwarder: route.forwarder.clone(),
            poster: route.poster.clone(),
            local: self.local.clone(),
            me,
        };
        tasks.spawn(running::track(
            "writer mailbox",
            pump.run(stop.clone())
                .instrument(tracing::info_span!("writer_mailbox")),
        ));
    }
}
