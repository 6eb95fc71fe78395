//! Where a marker loop reads next (docs/design.md §14, §15). The `gate_return` and `gate_control`
//! markers of a campaign whose gate state is not loaded are kept on purpose (a rebuild that read
//! MySQL before them needs them); read always from the oldest, enough of them would fill every
//! batch, and a marker behind them would never reach the gate, while the drift audit, which
//! counts marker units, reads 0. So each pass reads the batch after the last marker the previous
//! pass visited, and starts from the oldest again once a pass reached the last.

use std::sync::Mutex;

/// The position of one marker loop, `K` being a marker's place in the order it reads them.
pub struct MarkerCursor<K> {
    next: Mutex<Option<K>>,
}

impl<K> Default for MarkerCursor<K> {
    fn default() -> Self {
        Self {
            next: Mutex::new(None),
        }
    }
}

impl<K: Clone> MarkerCursor<K> {
    /// Read after this marker (`None`: from the oldest).
    pub fn after(&self) -> Option<K> {
        self.next.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A pass read `read` markers of at most `limit` and visited up to `last` (the marker it
    /// stopped before, when `stopped` early, is read again next time).
    pub fn passed(&self, last: Option<K>, read: usize, limit: u32, stopped: bool) {
        let reached_the_end = read < limit as usize && !stopped;
        *self.next.lock().unwrap_or_else(|p| p.into_inner()) =
            if reached_the_end { None } else { last };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_batch_reads_on_and_the_end_starts_over() {
        let cursor = MarkerCursor::<i64>::default();
        assert_eq!(cursor.after(), None);
        cursor.passed(Some(200), 200, 200, false);
        assert_eq!(cursor.after(), Some(200), "a full batch: more may follow");
        cursor.passed(Some(250), 50, 200, false);
        assert_eq!(
            cursor.after(),
            None,
            "the last batch: from the oldest again"
        );
        cursor.passed(Some(7), 30, 200, true);
        assert_eq!(
            cursor.after(),
            Some(7),
            "stopped early: go on after the last visited"
        );
        cursor.passed(None, 30, 200, true);
        assert_eq!(
            cursor.after(),
            None,
            "stopped on the first: the same batch again"
        );
    }
}
