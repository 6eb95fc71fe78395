//! Talking to the app over HTTP: `Reply` (a response reduced to what tests look at), the
//! request helpers on `TestApp` (get, post, create and open a campaign, join, confirm or cancel
//! a win), and the burst of users many tests send with the check of its winners.

use serde_json::{json, Value};

use crate::spawn::{TestApp, ADMIN_TOKEN};

/// 400 requests from 300 distinct users: users 1..=300 once, and 100 of them a second time.
pub fn burst_users() -> Vec<i64> {
    (1..=300).chain((1..=100).map(|i| i * 3)).collect()
}

/// The users that won, checking every reply is a win or a documented 409 and nobody won twice.
pub fn winners(replies: &[Reply], users: &[i64]) -> std::collections::HashSet<i64> {
    let mut winners = std::collections::HashSet::new();
    for (reply, user) in replies.iter().zip(users) {
        match reply.status {
            201 => assert!(winners.insert(*user), "user {user} won twice"),
            409 => assert!(
                matches!(reply.code(), "SOLD_OUT" | "ALREADY_PARTICIPATED"),
                "{reply:?}"
            ),
            _ => panic!("unexpected reply {reply:?}"),
        }
    }
    winners
}

/// A response reduced to what tests look at.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}
impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        reply(req).await
    }

    /// GET with the admin token.
    pub async fn admin_get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path)).bearer_auth(ADMIN_TOKEN))
            .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn post_json(&self, path: &str, body: &Value, token: Option<&str>) -> Reply {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    /// POST `…/participations/{user}/{action}` (`confirm` or `cancel`, docs/design.md §14), with
    /// the admin token when `admin` (a refund needs it).
    pub async fn act_on_win(
        &self,
        campaign_id: i64,
        user_id: i64,
        action: &str,
        admin: bool,
    ) -> Reply {
        let path = format!("/api/v1/campaigns/{campaign_id}/participations/{user_id}/{action}");
        self.post_json(&path, &json!({}), admin.then_some(ADMIN_TOKEN))
            .await
    }

    /// Creates a campaign through the admin API; panics unless 201.
    pub async fn create_campaign(&self, body: Value) -> Value {
        let reply = self
            .post_json("/api/v1/campaigns", &body, Some(ADMIN_TOKEN))
            .await;
        assert_eq!(reply.status, 201, "create campaign: {reply:?}");
        reply.body
    }

    /// An open campaign with `stock` units and the given per-user limit.
    pub async fn open_campaign(&self, stock: i64, per_user_limit: i32) -> i64 {
        self.open_campaign_with(stock, per_user_limit, json!({}))
            .await
    }

    /// `open_campaign` with more fields of the create request, e.g. `{"rewardPoints": 5}`.
    pub async fn open_campaign_with(&self, stock: i64, per_user_limit: i32, extra: Value) -> i64 {
        let mut body =
            json!({"name": "flash", "totalStock": stock, "perUserLimit": per_user_limit});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let c = self.create_campaign(body).await;
        c["id"].as_i64().expect("id")
    }

    /// A campaign of `stock` units whose window ends 1.5 s from now: its id and its end.
    pub async fn campaign_ending_soon(&self, stock: i64) -> (i64, chrono::DateTime<chrono::Utc>) {
        let ends_at = chrono::Utc::now() + chrono::Duration::milliseconds(1_500);
        let created = self
            .create_campaign(json!({"name": "ends soon", "totalStock": stock, "endsAt": ends_at}))
            .await;
        (created["id"].as_i64().expect("id"), ends_at)
    }

    /// `join` in a task of its own: the request goes on while the test does something else.
    pub fn spawn_join(
        &self,
        campaign_id: i64,
        user_id: i64,
        quantity: i32,
    ) -> tokio::task::JoinHandle<Reply> {
        let req = self
            .client
            .post(self.url(&format!("/api/v1/campaigns/{campaign_id}/participations")))
            .json(&json!({"userId": user_id, "quantity": quantity}));
        tokio::spawn(reply(req))
    }

    pub async fn join(&self, campaign_id: i64, user_id: i64, quantity: i32) -> Reply {
        self.post_json(
            &format!("/api/v1/campaigns/{campaign_id}/participations"),
            &json!({"userId": user_id, "quantity": quantity}),
            None,
        )
        .await
    }
}

/// Sends `req` and reads the reply (JSON body, or the text as a string).
pub async fn reply(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body read");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        body,
        headers,
    }
}
