//! A grouped campaign's group in the live view (docs/design.md §20, §22): the group's per-user
//! limit and its campaigns side by side — each one's state, stock and wins, and for a campaign
//! with a waiting room its queue, waitlist and offers — read with every snapshot of a watched
//! campaign of the group. An operator running a drop (the sizes of one sneaker) follows the whole
//! drop on one stream, whichever size it opened. Two queries, and one Redis round trip per
//! campaign with a room, sent together.

use chrono::{DateTime, Utc};
use sea_orm::DbErr;

use crate::{
    campaign::{repo, CampaignState},
    db::Db,
    gate::{queue::RoomFigures, Gate},
    group,
};

/// Queries a grouped campaign's reading runs on top: the group's row, its campaigns.
pub const GROUP_QUERIES: u64 = 2;

/// A group as one snapshot shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupFigures {
    pub id: i64,
    pub name: String,
    /// Units one user may hold across the group's campaigns.
    pub per_user_limit: i32,
    /// The group's campaigns, oldest first (the watched one among them).
    pub campaigns: Vec<Member>,
}

/// One campaign of the group, now.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub campaign_id: i64,
    pub name: String,
    pub state: CampaignState,
    pub total_stock: i64,
    /// Units still on sale.
    pub free_stock: i64,
    /// Every win ever made.
    pub accepted_count: i64,
    /// `None` without a waiting room, or when Redis did not answer.
    pub room: Option<MemberRoom>,
}

/// A member's waiting room: its queue, its waitlist and the offers made from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberRoom {
    pub queue_length: i64,
    pub waitlisted: i64,
    pub offers_open: i64,
    pub offers_taken: i64,
    pub offers_passed: i64,
}

impl From<RoomFigures> for MemberRoom {
    fn from(r: RoomFigures) -> Self {
        Self {
            queue_length: r.waiting,
            waitlisted: r.waitlisted,
            offers_open: r.offers_open,
            offers_taken: r.offers_taken,
            offers_passed: r.offers_passed,
        }
    }
}

/// Group `group_id` at `at`; `Ok(None)` when it does not exist (any more).
pub async fn read(
    db: &Db,
    gate: &Gate,
    group_id: i64,
    at: DateTime<Utc>,
) -> Result<Option<GroupFigures>, DbErr> {
    let (found, campaigns) = tokio::join!(
        group::repo::find(db, group_id),
        repo::in_group(db, group_id)
    );
    let Some(found) = found? else {
        return Ok(None);
    };
    let rooms = futures::future::join_all(campaigns?.into_iter().map(|c| async move {
        let room = match c.campaign.admission.queued() {
            true => gate.room_figures(c.campaign.room_slot()).await.ok(),
            false => None,
        };
        Member {
            campaign_id: c.campaign.id,
            name: c.campaign.name.clone(),
            state: c.campaign.state(at),
            total_stock: c.campaign.total_stock,
            free_stock: c.campaign.remaining_stock,
            accepted_count: c.accepted_count,
            room: room.map(MemberRoom::from),
        }
    }))
    .await;
    Ok(Some(GroupFigures {
        id: found.id,
        name: found.name,
        per_user_limit: found.per_user_limit,
        campaigns: rooms,
    }))
}
