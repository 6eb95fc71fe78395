//! The history as it is recorded: every entry stamped on one monotonic clock and appended under
//! one lock, so the file is in time order (the format's rule, `crate::history`). Also counts
//! what went by, for the progress line.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufWriter, Write},
    path::Path,
    sync::Mutex,
    time::Instant,
};

use anyhow::Context;

use crate::history::{Entry, EntryType, Func, NemesisTag, Process, Value};

pub struct Recorder {
    start: Instant,
    inner: Mutex<Inner>,
}

struct Inner {
    out: BufWriter<File>,
    /// (f, type) → count, for progress.
    counts: BTreeMap<(&'static str, &'static str), u64>,
    error: Option<std::io::Error>,
}

impl Recorder {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            start: Instant::now(),
            inner: Mutex::new(Inner {
                out: BufWriter::new(file),
                counts: BTreeMap::new(),
                error: None,
            }),
        })
    }

    /// Nanoseconds since the run began, on the history's clock.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn client(&self, kind: EntryType, process: u64, f: Func, value: Value) {
        self.write(kind, Process::Client(process), f, value);
    }

    /// A fault: `phase` `start` / `stop`, or `None` for an instantaneous one.
    pub fn fault(&self, fault: &str, phase: Option<&str>, target: &str) {
        let value = Value {
            fault: Some(fault.to_owned()),
            phase: phase.map(str::to_owned),
            target: Some(target.to_owned()),
            ..Value::default()
        };
        self.write(
            EntryType::Info,
            Process::Nemesis(NemesisTag::Nemesis),
            Func::Nemesis,
            value,
        );
    }

    fn write(&self, kind: EntryType, process: Process, f: Func, value: Value) {
        let mut inner = match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Stamped under the lock: the file's order is the clock's.
        let entry = Entry {
            kind,
            process,
            time: self.now(),
            f,
            value,
        };
        let kind_name = match kind {
            EntryType::Invoke => "invoke",
            EntryType::Ok => "ok",
            EntryType::Fail => "fail",
            EntryType::Info => "info",
        };
        *inner.counts.entry((f.name(), kind_name)).or_default() += 1;
        let result = serde_json::to_writer(&mut inner.out, &entry)
            .map_err(std::io::Error::other)
            .and_then(|()| inner.out.write_all(b"\n"));
        if let Err(e) = result {
            inner.error.get_or_insert(e);
        }
    }

    /// Completed operations so far (every completion, any f but the nemesis's).
    pub fn completed(&self) -> u64 {
        let inner = match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        inner
            .counts
            .iter()
            .filter(|((f, t), _)| *f != "nemesis" && *t != "invoke")
            .map(|(_, n)| n)
            .sum()
    }

    /// Outcome → count over client operations.
    pub fn outcomes(&self) -> BTreeMap<&'static str, u64> {
        let inner = match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out = BTreeMap::new();
        for ((f, t), n) in &inner.counts {
            if *f != "nemesis" && *t != "invoke" {
                *out.entry(*t).or_default() += n;
            }
        }
        out
    }

    pub fn finish(&self) -> anyhow::Result<()> {
        let mut inner = match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(e) = inner.error.take() {
            return Err(e).context("writing the history");
        }
        inner.out.flush().context("writing the history")
    }
}
