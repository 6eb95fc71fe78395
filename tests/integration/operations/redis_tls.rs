//! Redis over TLS (`rediss://`, docs/design.md §8): a Redis started here with `--tls-port` and a
//! throwaway CA and certificates made with the `openssl` command. The service verifies the
//! server's certificate against `REDIS_TLS_CA_FILE` (and refuses one it cannot verify), and
//! presents a client certificate (`REDIS_TLS_CERT_FILE`, `REDIS_TLS_KEY_FILE`) to a Redis that
//! requires one.

use std::{
    net::TcpListener,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use crate::{
    pki::Pki,
    spawn::{spawn_app_with, test_settings, TestApp},
    wait::wait_until,
};

/// A redis-server with only a TLS port, killed on drop.
struct TlsRedis {
    child: std::process::Child,
    port: u16,
}

impl TlsRedis {
    /// `client_auth`: redis' `tls-auth-clients` (`yes`, `optional`).
    async fn start(pki: &Pki, client_auth: &str) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let file = |f: &str| pki.path(f).display().to_string();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--tls-port", &port.to_string()])
            .args(["--tls-cert-file", &file("server.pem")])
            .args(["--tls-key-file", &file("server.key")])
            .args(["--tls-ca-cert-file", &file("ca.pem")])
            .args(["--tls-auth-clients", client_auth])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (scripts/services.sh installs it)");
        wait_until(
            "redis-server's TLS port",
            Duration::from_secs(10),
            || async move { std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() },
        )
        .await;
        Self { child, port }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn app_on(redis: &TlsRedis, ca: Option<&Path>, client: Option<(&Path, &Path)>) -> TestApp {
    let mut settings = test_settings().await;
    settings.redis.url =
        firstcome::config::Secret::new(format!("rediss://localhost:{}", redis.port));
    settings.redis.tls.ca_file = ca.map(Path::to_path_buf);
    if let Some((cert, key)) = client {
        settings.redis.tls.cert_file = Some(cert.to_path_buf());
        settings.redis.tls.key_file = Some(key.to_path_buf());
    }
    spawn_app_with(settings).await
}

#[tokio::test]
async fn the_service_serves_joins_through_a_redis_over_tls_and_verifies_its_certificate() {
    let pki = Pki::new();
    let redis = TlsRedis::start(&pki, "optional").await;

    let app = app_on(&redis, Some(&pki.path("ca.pem")), None).await;
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, 200, "{ready:?}");
    let campaign = app.open_campaign(2, 1).await;
    let won = app.join(campaign, 7, 1).await;
    assert_eq!(won.status, 201, "{won:?}");
    assert_eq!(
        app.join(campaign, 7, 1).await.code(),
        "ALREADY_PARTICIPATED"
    );
    assert_eq!(
        app.redis_stock(campaign).await,
        Some(1),
        "the gate's state is in the TLS Redis"
    );

    // Without the CA, the server's certificate is not trusted: no connection, a clean 503.
    let untrusting = app_on(&redis, None, None).await;
    let campaign = untrusting.open_campaign(2, 1).await;
    let refused = untrusting.join(campaign, 7, 1).await;
    assert_eq!(
        (refused.status, refused.code()),
        (503, "DEPENDENCY_UNAVAILABLE"),
        "{refused:?}"
    );
    assert_eq!(untrusting.get("/health/ready").await.status, 503);
}

#[tokio::test]
async fn a_redis_that_requires_client_certificates_gets_ours() {
    let pki = Pki::new();
    let redis = TlsRedis::start(&pki, "yes").await;

    let app = app_on(
        &redis,
        Some(&pki.path("ca.pem")),
        Some((&pki.path("client.pem"), &pki.path("client.key"))),
    )
    .await;
    let campaign = app.open_campaign(1, 1).await;
    let won = app.join(campaign, 1, 1).await;
    assert_eq!(won.status, 201, "{won:?}");

    let anonymous = app_on(&redis, Some(&pki.path("ca.pem")), None).await;
    let campaign = anonymous.open_campaign(1, 1).await;
    assert_eq!(anonymous.join(campaign, 1, 1).await.status, 503);
}
