//! Opening MySQL pools: the session settings every connection gets, and what the pool does with a
//! connection that stopped answering (docs/design.md §2.9).
//!
//! - Each new connection runs READ COMMITTED (a locking read, such as the relay's claim, locks
//!   the rows it returns and no gaps, so it never deadlocks with participation transactions
//!   inserting outbox rows) and the server-side statement limits: `max_statement_time` (MariaDB)
//!   or `max_execution_time` (MySQL, SELECTs only), and `innodb_lock_wait_timeout`, all from
//!   `DB_STATEMENT_TIMEOUT_MS`. These run per connection (sqlx's `after_connect`), not once per
//!   pool.
//! - The client side has the same deadline on every call ([`crate::db::deadline`]). A call cut off
//!   there leaves its connection mid-conversation; when it comes back to the pool, the release
//!   probe gives it [`RELEASE_PROBE`] to finish and answer a ping, or closes it. A connection to a
//!   host that black-holes traffic therefore never returns to the pool, and the pool opens new
//!   ones (bounded by `DB_CONNECT_TIMEOUT_MS`) once the host answers again.
//! - A connection idle for [`PINGED_RECENTLY`] or longer is pinged before it is handed out,
//!   within `DB_ACQUIRE_TIMEOUT_MS`. One back in the pool for less answered two pings on its way
//!   in (the probe's and sqlx's own), so asking a third time is a round trip for nothing; the hot
//!   loops (group commit, relay, consumers) take a connection many times a second. A peer that
//!   died since then fails the first statement, within its deadline, as it would have a moment
//!   later anyway.
//!
//! sqlx 0.9 does not expose the socket, so TCP keepalive cannot be set on MySQL connections; the
//! deadlines above are what detect a dead peer (on a connection in use, and on an idle one at its
//! next use).

use std::time::Duration;

use anyhow::Context;
use sea_orm::{
    sqlx::{self, AssertSqlSafe, Connection, Executor, MySqlConnection},
    ConnectOptions, Database, DatabaseConnection,
};

use crate::{config::DatabaseSettings, db::deadline::Db};

/// How long a connection coming back to the pool may take to answer a ping before it is closed.
/// A healthy connection answers in well under a millisecond; one abandoned mid-statement answers
/// once the server has finished or killed the statement.
pub const RELEASE_PROBE: Duration = Duration::from_secs(1);

/// How long a connection may sit in the pool and still be handed out without a ping.
pub const PINGED_RECENTLY: Duration = Duration::from_secs(1);

/// MySQL's "unknown system variable": `max_statement_time` is MariaDB's name.
const ER_UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;

/// The service's pool: bounded acquire, bounded statements, per-connection session settings.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Db> {
    let limit = settings.statement_timeout;
    let mut opts = options(settings);
    opts.map_sqlx_mysql_pool_opts(move |pool| {
        pool.after_connect(move |conn, _| Box::pin(async move { session(conn, limit).await }))
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PINGED_RECENTLY {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .after_release(|conn, _| {
                Box::pin(async move {
                    match tokio::time::timeout(RELEASE_PROBE, conn.ping()).await {
                        Ok(answer) => answer.map(|()| true),
                        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "no answer to the release probe",
                        ))),
                    }
                })
            })
    });
    let pool = Database::connect(opts)
        .await
        .context("could not connect to MySQL (DATABASE_URL)")?;
    let returning = answers_insert_returning(&pool).await?;
    Ok(Db::new(pool, limit).with_insert_returning(returning))
}

/// Whether the server is MariaDB, whose `INSERT … RETURNING` (10.5 and later; the service needs
/// 10.6) gives a multi-row insert's ids with the insert itself. MySQL has no such clause.
async fn answers_insert_returning(pool: &DatabaseConnection) -> anyhow::Result<bool> {
    use sea_orm::ConnectionTrait;
    let row = pool
        .query_one_raw(crate::db::sql::stmt("SELECT VERSION()", vec![]))
        .await
        .context("could not read the MySQL server's version")?
        .context("SELECT VERSION() answered no row")?;
    let version: String = row
        .try_get_by_index(0)
        .context("could not read the MySQL server's version")?;
    let mariadb = version.to_ascii_lowercase().contains("mariadb");
    tracing::debug!(%version, insert_returning = mariadb, "MySQL server version");
    Ok(mariadb)
}

/// A pool for migrations: no statement limit, since DDL on a big table may legitimately run
/// long. Used by `firstcome migrate` and by `serve` before it opens its own pool.
pub async fn connect_for_migrations(
    settings: &DatabaseSettings,
) -> anyhow::Result<DatabaseConnection> {
    let mut opts = options(settings);
    opts.max_connections(1).min_connections(0);
    Database::connect(opts)
        .await
        .context("could not connect to MySQL (DATABASE_URL)")
}

fn options(settings: &DatabaseSettings) -> ConnectOptions {
    let mut opts = ConnectOptions::new(plain_on_loopback(settings.url.expose()));
    opts.max_connections(settings.max_connections)
        .min_connections(1)
        .acquire_timeout(settings.acquire_timeout)
        .connect_timeout(settings.connect_timeout)
        .sqlx_logging(false);
    opts
}

/// `url` with `ssl-mode=DISABLED` when it names a loopback host and no `ssl-*` parameter.
///
/// sqlx's default (`PREFERRED`) encrypts whenever the server offers TLS, without checking its
/// certificate: on loopback that protects nothing (the traffic never leaves the machine) and
/// costs both sides CPU on every statement. A URL that asks for TLS keeps it, on any host.
fn plain_on_loopback(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return url.to_string();
    };
    // A `mysql://` URL's host is opaque to the parser: an IPv4 address comes as a domain.
    let loopback = match parsed.host() {
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    // `ssl-mode`, or a CA or client certificate given without it: TLS was asked for.
    let chosen = parsed
        .query_pairs()
        .any(|(k, _)| k.to_ascii_lowercase().starts_with("ssl"));
    if !loopback || chosen {
        return url.to_string();
    }
    let mut plain = parsed;
    plain.query_pairs_mut().append_pair("ssl-mode", "DISABLED");
    plain.to_string()
}

/// The session settings of one new connection (the numbers in the SQL are ours, not input).
async fn session(conn: &mut MySqlConnection, limit: Duration) -> Result<(), sqlx::Error> {
    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await?;
    conn.execute(crate::outbox::table::STAGE_TABLE).await?;
    // InnoDB counts lock waits in whole seconds (at least 1).
    let lock_wait_s = limit.as_secs_f64().ceil().max(1.0) as u64;
    conn.execute(AssertSqlSafe(format!(
        "SET SESSION innodb_lock_wait_timeout = {lock_wait_s}"
    )))
    .await?;
    let mariadb = format!(
        "SET SESSION max_statement_time = {:.3}",
        limit.as_secs_f64()
    );
    let answer = conn.execute(AssertSqlSafe(mariadb)).await;
    match answer {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e))
            if e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .is_some_and(|e| e.number() == ER_UNKNOWN_SYSTEM_VARIABLE) =>
        {
            let mysql = format!("SET SESSION max_execution_time = {}", limit.as_millis());
            conn.execute(AssertSqlSafe(mysql)).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::plain_on_loopback;

    #[test]
    fn loopback_without_a_choice_goes_plain_and_every_other_url_is_left_as_it_is() {
        assert_eq!(
            plain_on_loopback("mysql://u:p@127.0.0.1:3306/db"),
            "mysql://u:p@127.0.0.1:3306/db?ssl-mode=DISABLED"
        );
        assert_eq!(
            plain_on_loopback("mysql://u:p@localhost/db?charset=utf8mb4"),
            "mysql://u:p@localhost/db?charset=utf8mb4&ssl-mode=DISABLED"
        );
        assert_eq!(
            plain_on_loopback("mysql://u:p@[::1]:3306/db"),
            "mysql://u:p@[::1]:3306/db?ssl-mode=DISABLED"
        );
        for kept in [
            "mysql://u:p@127.0.0.1:3306/db?ssl-mode=VERIFY_IDENTITY&ssl-ca=/ca.pem",
            "mysql://u:p@localhost/db?sslmode=required",
            "mysql://u:p@127.0.0.1/db?ssl-ca=/ca.pem",
            "mysql://u:p@db.example.com:3306/db",
            "mysql://u:p@10.0.0.5:3306/db",
        ] {
            assert_eq!(plain_on_loopback(kept), kept);
        }
    }
}
