//! Reads a history and pairs each process's `invoke` with its completion (one operation at a time
//! per process), and the nemesis's entries into faults with the span they lasted.

use std::{collections::HashMap, io::BufRead};

use super::{Entry, EntryType, Fault, Func, History, HistoryError, Op, Outcome, Process, Value};

/// Reads a JSON Lines history (blank lines skipped) and pairs it.
pub fn read(reader: impl BufRead) -> Result<History, HistoryError> {
    let mut entries = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let entry = serde_json::from_str(&line).map_err(|source| HistoryError::Parse {
            line: index + 1,
            source,
        })?;
        entries.push((index + 1, entry));
    }
    pair(entries)
}

/// Pairs entries (with their line numbers) into operations and faults. Operations are ordered
/// by invocation.
pub fn pair(entries: Vec<(usize, Entry)>) -> Result<History, HistoryError> {
    let mut history = History::default();
    // process → index in `history.ops` of its open operation.
    let mut open: HashMap<u64, usize> = HashMap::new();
    let mut open_faults: HashMap<(String, Option<String>), usize> = HashMap::new();
    for (line, entry) in entries {
        let time = i64::try_from(entry.time).map_err(|_| HistoryError::Time {
            line,
            time: entry.time,
        })?;
        let process = match entry.process {
            Process::Nemesis(_) => {
                record_fault(&mut history.faults, &mut open_faults, entry.value, time);
                continue;
            }
            Process::Client(p) => p,
        };
        if entry.f == Func::Nemesis {
            return Err(HistoryError::ClientNemesis { line });
        }
        let f = entry.f.name();
        match (entry.kind, open.get(&process).copied()) {
            (EntryType::Invoke, Some(pending)) => {
                return Err(HistoryError::Overlapping {
                    line,
                    process,
                    f,
                    pending: history.ops[pending].f.name(),
                })
            }
            (EntryType::Invoke, None) => {
                open.insert(process, history.ops.len());
                history.ops.push(Op {
                    id: history.ops.len(),
                    process,
                    f: entry.f,
                    invoke: time,
                    complete: None,
                    outcome: Outcome::Info,
                    value: entry.value,
                });
            }
            (_, None) => return Err(HistoryError::Unpaired { line, process, f }),
            (kind, Some(pending)) => {
                let op = &mut history.ops[pending];
                if op.f != entry.f {
                    return Err(HistoryError::WrongFunction {
                        line,
                        process,
                        f,
                        pending: op.f.name(),
                    });
                }
                op.complete = Some(time);
                op.outcome = match kind {
                    EntryType::Ok => Outcome::Ok,
                    EntryType::Fail => Outcome::Fail,
                    _ => Outcome::Info,
                };
                overlay(&mut op.value, entry.value);
                open.remove(&process);
            }
        }
    }
    Ok(history)
}

fn record_fault(
    faults: &mut Vec<Fault>,
    open: &mut HashMap<(String, Option<String>), usize>,
    value: Value,
    time: i64,
) {
    let kind = value.fault.unwrap_or_else(|| "unnamed".to_owned());
    let key = (kind.clone(), value.target.clone());
    match value.phase.as_deref() {
        Some("stop") => match open.remove(&key) {
            Some(i) => faults[i].end = Some(time),
            // A heal with no start: the fault began before the history did.
            None => faults.push(Fault {
                kind,
                target: value.target,
                start: i64::MIN,
                end: Some(time),
            }),
        },
        Some("start") => {
            // A repeated start (Jepsen writes invoke then info) keeps the first.
            if let std::collections::hash_map::Entry::Vacant(slot) = open.entry(key) {
                slot.insert(faults.len());
                faults.push(Fault {
                    kind,
                    target: value.target,
                    start: time,
                    end: None,
                });
            }
        }
        _ => faults.push(Fault {
            kind,
            target: value.target,
            start: time,
            end: Some(time),
        }),
    }
}

/// The completion's fields win; the invoke's fill what the completion left out.
fn overlay(base: &mut Value, answer: Value) {
    macro_rules! take {
        ($($field:ident),*) => { $( if answer.$field.is_some() { base.$field = answer.$field; } )* };
    }
    take!(
        campaign,
        user,
        quantity,
        idempotency_key,
        delta,
        participation_id,
        status,
        reason,
        gate,
        sequence,
        control_seq,
        ticket,
        state,
        position,
        admission_token,
        bot_check,
        answered_at_ms,
        admission_expires_ms,
        total_stock,
        remaining_stock,
        code,
        error,
        fault,
        phase,
        target,
        group,
        items,
        purchase
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_per_process_and_leaves_open_invokes_as_info() {
        let text = r#"
{"type":"invoke","process":1,"time":10,"f":"join","value":{"campaign":1,"user":5}}
{"type":"invoke","process":2,"time":11,"f":"join","value":{"campaign":1,"user":6}}
{"type":"info","process":"nemesis","time":12,"f":"nemesis","value":{"fault":"kill","phase":"start"}}
{"type":"ok","process":1,"time":20,"f":"join","value":{"participationId":9,"status":"HELD"}}
{"type":"info","process":"nemesis","time":25,"f":"nemesis","value":{"fault":"kill","phase":"stop"}}
"#;
        let h = read(text.as_bytes()).unwrap();
        assert_eq!(h.ops.len(), 2);
        assert_eq!(h.ops[0].outcome, Outcome::Ok);
        assert_eq!(h.ops[0].value.user, Some(5));
        assert_eq!(h.ops[0].value.participation_id, Some(9));
        assert_eq!(h.ops[1].outcome, Outcome::Info);
        assert_eq!(h.ops[1].complete, None);
        assert_eq!(h.faults.len(), 1);
        assert_eq!(h.faults[0].end, Some(25));
    }

    #[test]
    fn a_second_invoke_of_a_busy_process_is_an_error() {
        let text = r#"{"type":"invoke","process":1,"time":10,"f":"join","value":{}}
{"type":"invoke","process":1,"time":11,"f":"join","value":{}}"#;
        assert!(matches!(
            read(text.as_bytes()),
            Err(HistoryError::Overlapping { line: 2, .. })
        ));
    }
}
