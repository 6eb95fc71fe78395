//! The writer's side of a hand-over, and the origin's replies: one loop per instance waits on
//! both lists of its mailbox (one `BLMPOP` takes a batch of the first list that has any; a batch
//! of wins is taken with the replies waiting beside it in one script call). A handed-over win is
//! written here as a local one ([`LocalWrite`]: the campaign's lanes, its batches) and its
//! outcome posted back to its origin; a reply answers the hand-over waiting on it.
//!
//! A commit in doubt is settled here before the reply (the settlement gives back what was not
//! written), so the origin answers from its verdict and gives nothing back twice.
//!
//! When the instance stops, the loop takes no more wins but reads replies until its own
//! hand-overs and the wins it took are answered, for at most [`DRAIN_FOR`].

use std::{sync::Arc, time::Duration};

use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use super::{
    forward::Forwarder,
    post::Poster,
    wire::{Forwarded, Reply},
    LocalWrite,
};
use crate::{
    db::session::RetryPause,
    gate::{
        mailbox::{Mailbox, MailboxWait, Taken},
        Gate,
    },
};

/// Most items read from a list at once.
const DRAIN: usize = 256;

/// How long a stopping instance goes on reading replies for its hand-overs in flight.
pub const DRAIN_FOR: Duration = Duration::from_secs(10);

pub struct Pump {
    pub gate: Gate,
    pub wait: MailboxWait,
    pub forwarder: Arc<Forwarder>,
    pub poster: Poster,
    pub local: Arc<LocalWrite>,
    pub me: Arc<str>,
}

impl Pump {
    /// Runs until `stop`, then drains (see the module's text).
    pub async fn run(self, stop: CancellationToken) {
        let inbox = self.gate.mailbox_key(&self.me, Mailbox::Inbox);
        let replies = self.gate.mailbox_key(&self.me, Mailbox::Replies);
        let writes = TaskTracker::new();
        let keys = [inbox.clone(), replies.clone()];
        let mut pause = RetryPause::new();
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => break,
                next = self.wait.next(&keys, DRAIN) => next,
            };
            match next {
                Ok(None) => {}
                Ok(Some((key, items))) => {
                    pause = RetryPause::new();
                    // BLMPOP looks at the inbox first, so replies mean the inbox was empty; a
                    // batch of wins is taken with the replies waiting beside it, so a busy inbox
                    // never starves them.
                    let taken = match key == inbox {
                        true => self.take_handed(items).await,
                        false => Taken {
                            wins: Vec::new(),
                            replies: items,
                        },
                    };
                    for item in taken.replies {
                        self.forwarder.answer(&item);
                    }
                    for item in taken.wins {
                        self.take(item, &writes);
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "Could not read this instance's mailbox; trying again.");
                    pause.wait().await;
                }
            }
        }
        self.drain_replies(&replies, &writes).await;
    }

    /// The wins handed to this instance it takes (`popped`, its wait's, and what else the inbox
    /// holds), with the replies waiting; when Redis fails, the rest stays for the next round,
    /// and the popped wins go back to their origins, which take them back as never taken.
    async fn take_handed(&self, popped: Vec<String>) -> Taken {
        let mark_life = self.forwarder.mark_life();
        (self.gate)
            .take_handed(&self.me, popped, DRAIN, mark_life)
            .await
            .unwrap_or_else(|e| {
                tracing::debug!(error = %e, "Could not take the inbox's wins; the next round does.");
                Taken::default()
            })
    }

    /// Writes a handed-over win in a task of its own and posts its outcome back.
    fn take(&self, item: String, writes: &TaskTracker) {
        let wire = item.split_once('|').map_or("", |(_, wire)| wire);
        let forwarded: Forwarded = match serde_json::from_str(wire) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "A win in this instance's inbox could not be read; dropped (its origin takes it back or the reconciler settles it).");
                return;
            }
        };
        let (local, poster) = (self.local.clone(), self.poster.clone());
        let span = tracing::debug_span!(
            "handed_over",
            campaign_id = forwarded.win.entry.campaign_id,
            user_id = forwarded.win.entry.user_id,
            origin = %forwarded.origin
        );
        writes.spawn(
            async move {
                let outcome = local.write_handed_over(forwarded.win).await;
                local.hooks.before_handover_reply().await;
                let reply = Reply {
                    ticket: forwarded.ticket,
                    outcome,
                };
                let reply = serde_json::to_string(&reply).expect("a reply serializes");
                poster.send(forwarded.origin.into(), Mailbox::Replies, reply);
            }
            .instrument(span),
        );
    }

    /// Stopping: no more wins taken; replies read until the hand-overs in flight and the wins
    /// taken are answered, or [`DRAIN_FOR`].
    async fn drain_replies(&self, replies: &str, writes: &TaskTracker) {
        writes.close();
        let until = tokio::time::Instant::now() + DRAIN_FOR;
        let keys = [replies.to_string()];
        while self.forwarder.in_flight() > 0 || !writes.is_empty() {
            let next = tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                next = self.wait.next(&keys, DRAIN) => next,
            };
            if let Ok(Some((_, items))) = next {
                for item in items {
                    self.forwarder.answer(&item);
                }
            }
        }
    }
}
