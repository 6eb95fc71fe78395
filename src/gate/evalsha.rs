//! The reservation's way to Redis: a script's `EVALSHA` built as one command, and sent the way
//! redis-rs sends a `ScriptInvocation` (NOSCRIPT: load the script, send again), within the
//! Redis timeout. The join's one Redis call per request takes this way; the other scripts go
//! through `ScriptInvocation` ([`Gate::run`]).

use redis::Script;

use crate::gate::scripts::{Gate, GateError};

impl Gate {
    /// `EVALSHA` of `script` on the campaign's keys named by `suffixes`, as one command that
    /// takes the arguments next: each key and argument is written once, into the command's
    /// buffer (a `ScriptInvocation` copies each into a vector of its own, and then all of them
    /// again into its command). The hot path's way; [`Self::run`] is everyone else's.
    pub(super) fn evalsha<const N: usize>(
        &self,
        script: &Script,
        slot: crate::gate::Slot,
        suffixes: [&str; N],
    ) -> redis::Cmd {
        let mut cmd = redis::Cmd::with_capacity(3 + N + 8, 256);
        cmd.arg("EVALSHA").arg(script.get_hash()).arg(N);
        let mut key = self.campaign_key_base(slot);
        let base = key.len();
        for suffix in suffixes {
            key.truncate(base);
            key.push_str(suffix);
            cmd.arg(key.as_str());
        }
        cmd
    }

    /// Runs an [`Self::evalsha`] command as `ScriptInvocation::invoke_async` does: a server that
    /// does not know the script (restarted, failed over, flushed) answers NOSCRIPT, and the
    /// script is loaded and the command sent once more. Bounded by the Redis timeout, both
    /// tries together.
    pub(super) async fn run_evalsha<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        cmd: &redis::Cmd,
    ) -> Result<T, GateError> {
        let mut conn = self.conn.clone();
        let call = async {
            match cmd.query_async::<T>(&mut conn).await {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    script.load_async(&mut conn).await?;
                    cmd.query_async::<T>(&mut conn).await
                }
                answer => answer,
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(answer) => Ok(answer?),
            Err(_) => Err(GateError::Timeout(self.timeout)),
        }
    }
}
