//! MySQL over TLS through `DATABASE_URL` (`ssl-mode`, `ssl-ca`; docs/design.md §8), against the local
//! MariaDB, which scripts/test-services.sh starts with a throwaway CA and server certificate.

use sea_orm::ConnectionTrait;

use crate::{
    pki::Pki,
    spawn::{spawn_app_with, test_settings},
};

/// `TEST_MYSQL_SSL_CA`: the CA of the test MariaDB's certificate.
fn ca() -> String {
    std::env::var("TEST_MYSQL_SSL_CA").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/test-services/tls/ca.pem"
        )
        .into()
    })
}

#[tokio::test]
async fn the_service_runs_on_mysql_over_verified_tls() {
    let mut settings = test_settings().await;
    let plain = settings.database.url.expose().to_string();
    settings.database.url =
        firstcome::config::Secret::new(format!("{plain}?ssl-mode=VERIFY_IDENTITY&ssl-ca={}", ca()));
    let app = spawn_app_with(settings).await;
    let campaign = app.open_campaign(3, 1).await;
    assert_eq!(app.join(campaign, 1, 1).await.status, 201);

    // The service's own pool speaks TLS.
    let row = app
        .probe
        .api_pool()
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::MySql,
            "SHOW SESSION STATUS LIKE 'Ssl_cipher'",
        ))
        .await
        .expect("SHOW STATUS")
        .expect("a row");
    let cipher: String = row.try_get_by_index(1).expect("Ssl_cipher");
    assert!(!cipher.is_empty(), "the API pool's connection is encrypted");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused_at_startup() {
    let other = Pki::new();

    let mut settings = test_settings().await;
    let plain = settings.database.url.expose().to_string();
    settings.database.url = firstcome::config::Secret::new(format!(
        "{plain}?ssl-mode=VERIFY_CA&ssl-ca={}",
        other.path("ca.pem").display()
    ));
    settings.database.connect_timeout = std::time::Duration::from_secs(2);
    let built = firstcome::startup::Application::build(settings).await;
    let err = built
        .err()
        .expect("the server's certificate is not trusted");
    assert!(format!("{err:#}").contains("MySQL"), "{err:#}");
}
