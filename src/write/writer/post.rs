//! Posting to the instances' mailboxes in batches: every item posted while the previous batch
//! was on its way to Redis goes in the next, one `RPUSH` per list. A burst's hand-overs cost a
//! Redis call per batch, not per win; a lone one goes at once.

use std::{collections::HashMap, sync::Arc};

use futures::future::join_all;
use tokio::sync::{mpsc, oneshot};

use crate::gate::{mailbox::Mailbox, Gate};

/// Most items taken into one batch.
const BATCH: usize = 1_024;

/// The sending side; cheap to clone. The posting task ends when every clone is dropped.
#[derive(Clone)]
pub struct Poster {
    tx: mpsc::UnboundedSender<Post>,
}

struct Post {
    to: Arc<str>,
    which: Mailbox,
    item: String,
    /// Told whether the item is in the list.
    done: Option<oneshot::Sender<bool>>,
}

impl Poster {
    /// Starts the posting task.
    pub fn start(gate: Gate) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(gate, rx));
        Self { tx }
    }

    /// Posts `item` and waits until Redis has it: whether it does (`false`: the call failed,
    /// and the item may or may not be there).
    pub async fn post(&self, to: Arc<str>, which: Mailbox, item: String) -> bool {
        let (done, posted) = oneshot::channel();
        let post = Post {
            to,
            which,
            item,
            done: Some(done),
        };
        self.tx.send(post).is_ok() && posted.await.unwrap_or(false)
    }

    /// Posts `item` without waiting (a reply: a lost one leaves its origin to its deadline).
    pub fn send(&self, to: Arc<str>, which: Mailbox, item: String) {
        let post = Post {
            to,
            which,
            item,
            done: None,
        };
        let _ = self.tx.send(post);
    }
}

/// One list's items of a batch, and who waits to hear they are posted.
type List = (Vec<String>, Vec<oneshot::Sender<bool>>);

async fn run(gate: Gate, mut rx: mpsc::UnboundedReceiver<Post>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut lists: HashMap<(Arc<str>, Mailbox), List> = HashMap::new();
        for post in batch.drain(..) {
            let list = lists.entry((post.to, post.which)).or_default();
            list.0.push(post.item);
            list.1.extend(post.done);
        }
        join_all(lists.into_iter().map(|((to, which), (items, done))| {
            let gate = &gate;
            async move {
                let posted = gate.post(&to, which, &items).await;
                if let Err(e) = &posted {
                    tracing::warn!(error = %e, instance = %to, ?which, items = items.len(),
                        "Could not post to an instance's mailbox.");
                }
                for d in done {
                    let _ = d.send(posted.is_ok());
                }
            }
        }))
        .await;
    }
}
