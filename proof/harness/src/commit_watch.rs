//! Reads the MySQL protocol going through the proxy just far enough to see the COMMIT of a
//! transaction that inserted participations — a batch of wins — so the failover can cut
//! MySQL's answers right after it: that COMMIT lands, and the service never learns it did.
//!
//! A connection's packets (`[length: 3 bytes LE][sequence: 1][payload]`) are read per chunk,
//! assuming a chunk starts at a packet boundary (a client writes a packet at a time; a packet
//! split across reads is merely missed, and the failover then cuts after [`ARMED_FOR`]).
//! The service's inserts are prepared statements, so the watch learns their ids from the
//! server's answer to the prepare (`COM_STMT_PREPARE_OK`), then recognises their executions;
//! COMMIT and ROLLBACK are plain queries (sqlx sends them as `COM_QUERY`).
//!
//! [`ARMED_FOR`]: super::failover::ARMED_FOR

use std::collections::HashSet;

const COM_QUERY: u8 = 0x03;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const INSERT: &[u8] = b"INSERT INTO participation";

/// One connection's view of its transaction.
#[derive(Debug, Default)]
pub struct CommitWatch {
    /// Ids of this connection's prepared statements that insert participations.
    inserts: HashSet<u32>,
    /// Such a statement is being prepared: the server's next answer names its id.
    preparing: bool,
    /// The open transaction inserted participations.
    wins_pending: bool,
}

impl CommitWatch {
    /// Reads what the client sent; true when it holds the COMMIT of a transaction that
    /// inserted participations.
    pub fn client(&mut self, chunk: &[u8]) -> bool {
        let mut commits_wins = false;
        for payload in packets(chunk) {
            let (&command, body) = match payload.split_first() {
                Some(split) => split,
                None => continue,
            };
            match command {
                COM_QUERY if starts_with(body, INSERT) => self.wins_pending = true,
                COM_QUERY if body.trim_ascii().eq_ignore_ascii_case(b"COMMIT") => {
                    commits_wins |= self.wins_pending;
                    self.wins_pending = false;
                }
                COM_QUERY if body.trim_ascii().eq_ignore_ascii_case(b"ROLLBACK") => {
                    self.wins_pending = false;
                }
                COM_STMT_PREPARE => self.preparing = starts_with(body, INSERT),
                COM_STMT_EXECUTE => {
                    let id = body
                        .get(..4)
                        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                    if id.is_some_and(|id| self.inserts.contains(&id)) {
                        self.wins_pending = true;
                    }
                }
                _ => {}
            }
        }
        commits_wins
    }

    /// Reads what the server answered: the id of a prepared insert.
    pub fn server(&mut self, chunk: &[u8]) {
        if !self.preparing {
            return;
        }
        if let Some(payload) = packets(chunk).next() {
            self.preparing = false;
            if let [0x00, a, b, c, d, ..] = payload {
                self.inserts.insert(u32::from_le_bytes([*a, *b, *c, *d]));
            }
        }
    }
}

fn starts_with(body: &[u8], prefix: &[u8]) -> bool {
    let body = body.trim_ascii_start();
    body.len() >= prefix.len() && body[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The payloads of the whole packets at the start of a chunk.
fn packets(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = chunk;
    std::iter::from_fn(move || {
        let [a, b, c, _seq, ..] = *rest else {
            return None;
        };
        let len = usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16;
        let payload = rest.get(4..4 + len)?;
        rest = &rest[4 + len..];
        Some(payload)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut p = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, 0];
        p.extend_from_slice(payload);
        p
    }

    fn query(command: u8, text: &[u8]) -> Vec<u8> {
        packet(&[&[command], text].concat())
    }

    #[test]
    fn the_commit_of_a_transaction_that_executed_a_prepared_insert_is_seen() {
        let mut w = CommitWatch::default();
        assert!(!w.client(&query(
            COM_STMT_PREPARE,
            b"INSERT INTO participation (campaign_id) VALUES (?)"
        )));
        w.server(&packet(&[0x00, 7, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]));
        assert!(!w.client(&query(COM_QUERY, b"BEGIN")));
        assert!(!w.client(&query(COM_STMT_EXECUTE, &[7, 0, 0, 0, 0, 1, 0, 0, 0])));
        assert!(w.client(&query(COM_QUERY, b"COMMIT")));
        // The next transaction inserts nothing: its COMMIT is not a batch of wins.
        assert!(!w.client(&query(COM_QUERY, b"BEGIN")));
        assert!(!w.client(&query(COM_QUERY, b"commit")));
    }

    #[test]
    fn other_statements_and_rolled_back_inserts_are_not_batches_of_wins() {
        let mut w = CommitWatch::default();
        w.client(&query(COM_STMT_PREPARE, b"UPDATE campaign SET x = ?"));
        w.server(&packet(&[0x00, 9, 0, 0, 0]));
        w.client(&query(COM_STMT_EXECUTE, &[9, 0, 0, 0]));
        assert!(!w.client(&query(COM_QUERY, b"COMMIT")));
        w.client(&query(COM_QUERY, b"INSERT INTO participation VALUES (1)"));
        w.client(&query(COM_QUERY, b"ROLLBACK"));
        assert!(!w.client(&query(COM_QUERY, b"COMMIT")));
    }
}
