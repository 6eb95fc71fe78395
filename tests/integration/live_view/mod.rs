//! The live view of a sale (docs/design.md §20): refused joins counted per campaign across
//! instances, and the Server-Sent Events stream that shares one snapshot a second among all of a
//! campaign's watchers; who sees the service's own figures, and the caps on streams
//! (`access`). The console drawn from them is checked in a real browser by
//! `scripts/console-check.sh` (run by `scripts/test.sh`).

mod access;
mod console;
mod group;
mod period;
mod refusals;
mod series;
mod stream;

use serde_json::Value;

use crate::spawn::TestApp;

/// `GET /api/v1/campaigns/{id}`.
async fn campaign(app: &TestApp, id: i64) -> Value {
    let reply = app.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body
}
