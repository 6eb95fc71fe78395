//! The process's open-file limit, raised at start from its soft value to its hard one: every
//! connection is a descriptor, and a common soft default (1024) runs out long before
//! `HTTP_MAX_CONNECTIONS`, at which point accepting fails (EMFILE) instead of the caps answering.

use rlimit::Resource;

use crate::http::server::refuse::MAX_REFUSING;

/// Descriptors the service needs besides client connections: database and Redis pools, Kafka's
/// sockets, the listener, files. Generous: it only decides whether to warn.
const OTHER_FILES: u64 = 512;

/// Raises the soft open-file limit to the hard one and logs both, once (INFO); warns when the
/// result is too low for `max_connections` to be reached.
pub fn raise_open_files_limit(max_connections: usize) {
    let (before, hard) = match rlimit::getrlimit(Resource::NOFILE) {
        Ok(limits) => limits,
        Err(error) => {
            tracing::warn!(%error, "Could not read the open-file limit; leaving it as it is.");
            return;
        }
    };
    let after = match rlimit::increase_nofile_limit(hard) {
        Ok(after) => after,
        Err(error) => {
            tracing::warn!(%error, before, hard, "Could not raise the open-file limit; leaving it as it is.");
            before
        }
    };
    tracing::info!(before, after, hard, "Open-file limit set.");
    let needed = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(u64::try_from(MAX_REFUSING).unwrap_or(u64::MAX))
        .saturating_add(OTHER_FILES);
    if after < needed {
        tracing::warn!(
            open_files = after,
            needed,
            "HTTP_MAX_CONNECTIONS={max_connections} needs more descriptors than the open-file limit \
             allows: past it connections fail to be accepted instead of getting 503 SERVICE_BUSY. \
             Raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower HTTP_MAX_CONNECTIONS."
        );
    }
}
