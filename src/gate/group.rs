//! A group's per-user limit at the gate (docs/design.md §22). Every campaign of a group keeps
//! its keys under the group's hash tag, and a user's state in the same bucket of each (the home
//! bucket: a group's campaigns share their number of buckets), so `lua/reserve.lua` reads the
//! units the user holds in the other campaigns in the same atomic step as the stock. Each
//! campaign of a group keeps, beside its winners set, the units each of them holds
//! (`…:held`, user → units): written and forgotten with the winners set by the same scripts, and
//! rebuilt with it from MySQL.

use crate::gate::{scripts::Gate, Slot};

/// The group a reservation is checked against: its limit, and the other campaigns of the group.
#[derive(Debug, Clone, Copy)]
pub struct GroupCheck<'a> {
    /// Units one user may hold across the group's campaigns.
    pub limit: i32,
    /// The group's other campaigns, the one reserving left out.
    pub siblings: &'a [Sibling],
}

/// Another campaign of the group, as the gate knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sibling {
    pub campaign_id: i64,
    /// Its creation time in microseconds (see `lua/reserve.lua`): keys of another campaign that
    /// had its id count as not loaded.
    pub epoch: i64,
}

impl Gate {
    /// `…:held` of a campaign in a group (units held per user); `None` for a campaign in no
    /// group, which keeps none.
    pub(super) fn held_key(&self, slot: Slot) -> Option<String> {
        slot.group.map(|_| self.campaign_key_base(slot) + "held")
    }

    /// The `EVALSHA` of `script` on a grouped reservation's keys: the campaign's `suffixes`, its
    /// units held, then each sibling's hash and units held (in the same slot).
    pub(super) fn grouped_evalsha<const N: usize>(
        &self,
        script: &redis::Script,
        slot: Slot,
        suffixes: [&str; N],
        group: GroupCheck<'_>,
    ) -> redis::Cmd {
        let keys = N + 1 + 2 * group.siblings.len();
        let mut cmd = redis::Cmd::with_capacity(3 + keys + 8 + group.siblings.len(), 512);
        cmd.arg("EVALSHA").arg(script.get_hash()).arg(keys);
        let base = self.campaign_key_base(slot);
        for suffix in suffixes.into_iter().chain(["held"]) {
            cmd.arg(format!("{base}{suffix}"));
        }
        for sibling in group.siblings {
            let base = self.campaign_key_base(slot.sibling(sibling.campaign_id));
            cmd.arg(format!("{base}meta")).arg(format!("{base}held"));
        }
        cmd
    }
}
