//! Two parts of a live snapshot (docs/design.md §20): a grouped campaign's group (§22), the
//! group's per-user limit and its campaigns side by side, so that one stream follows a whole
//! drop; and the campaign's last five minutes in 5-second slots, which the console charts.

use chrono::{DateTime, Utc};
use poem_openapi::Object;

use crate::{
    api::campaigns::StateDto,
    live::{
        group::{GroupFigures, Member},
        Slot,
    },
};

/// Five seconds of the campaign: the wins (as the stats consumer applied them, at their
/// acceptance) and the refused joins (as the instances counted them) from `at` on. The last slot
/// of a snapshot may still be under way.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct LiveSlot {
    /// The slot's start.
    pub at: DateTime<Utc>,
    pub wins: i64,
    pub refused: i64,
}

impl From<&Slot> for LiveSlot {
    fn from(s: &Slot) -> Self {
        Self {
            at: s.at,
            wins: s.wins,
            refused: s.refused,
        }
    }
}

/// The group of a grouped campaign: its per-user limit and every campaign in it, oldest first
/// (the watched one among them).
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct LiveGroup {
    pub group_id: i64,
    pub name: String,
    /// Units one user may hold across the group's campaigns.
    pub per_user_limit: i32,
    pub campaigns: Vec<LiveGroupCampaign>,
}

/// One campaign of the group, now.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct LiveGroupCampaign {
    pub campaign_id: i64,
    pub name: String,
    pub state: StateDto,
    pub total_stock: i64,
    /// Units on sale.
    pub free_stock: i64,
    /// Every win ever made (units that came back are sold again).
    pub accepted_count: i64,
    /// Tickets in its waiting room's queue; `null` without a room, or when Redis did not answer
    /// (as for the four figures below).
    pub queue_length: Option<i64>,
    /// Tickets on its waitlist.
    pub waitlisted: Option<i64>,
    /// Offers of units that came back, open now.
    pub offers_open: Option<i64>,
    /// Offers used by a win, and offers that expired and passed to the next user, so far.
    pub offers_taken: Option<i64>,
    pub offers_passed: Option<i64>,
}

impl From<&GroupFigures> for LiveGroup {
    fn from(g: &GroupFigures) -> Self {
        Self {
            group_id: g.id,
            name: g.name.clone(),
            per_user_limit: g.per_user_limit,
            campaigns: g.campaigns.iter().map(LiveGroupCampaign::from).collect(),
        }
    }
}

impl From<&Member> for LiveGroupCampaign {
    fn from(m: &Member) -> Self {
        Self {
            campaign_id: m.campaign_id,
            name: m.name.clone(),
            state: m.state.into(),
            total_stock: m.total_stock,
            free_stock: m.free_stock,
            accepted_count: m.accepted_count,
            queue_length: m.room.map(|r| r.queue_length),
            waitlisted: m.room.map(|r| r.waitlisted),
            offers_open: m.room.map(|r| r.offers_open),
            offers_taken: m.room.map(|r| r.offers_taken),
            offers_passed: m.room.map(|r| r.offers_passed),
        }
    }
}
