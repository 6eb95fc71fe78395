//! Configuration (docs/design.md §8) as the binary reads it: `firstcome serve --help` lists every
//! variable; an invalid one stops the process naming it (never echoing a secret); and
//! `KAFKA_PROPERTIES` reaches the Kafka clients the service creates.

use std::time::Duration;

use crate::{
    binary::run_firstcome,
    spawn::{spawn_app_with, start_broker, test_settings, with_relay},
    wait::wait_until,
};

/// Runs the real binary with `args` and only `env`; (exit code, stdout, stderr).
async fn firstcome(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let run = run_firstcome(args, env).await;
    (run.status.code(), run.stdout, run.stderr)
}

#[tokio::test]
async fn serve_help_names_every_variable_of_the_design_with_its_default() {
    let (code, help, _) = firstcome(&["serve", "--help"], &[]).await;
    assert_eq!(code, Some(0));
    for var in firstcome::config::reference::CORE_VARIABLES {
        assert!(
            help.contains(&format!("[env: {var}")),
            "{var} is missing:\n{help}"
        );
    }
    assert!(help.contains("[default: 4]"), "defaults are shown:\n{help}");
    // A secret's value is never shown, even when it is set.
    let (_, help, _) = firstcome(
        &["serve", "--help"],
        &[("ADMIN_TOKEN", "hunter2-correct-horse-battery")],
    )
    .await;
    assert!(!help.contains("hunter2"), "{help}");
}

#[tokio::test]
async fn invalid_values_stop_the_binary_naming_the_variable_and_never_the_secret() {
    for (var, value, says) in [
        ("RELAY_WORKERS", "0", "1..=256"),
        (
            "KAFKA_PROPERTIES",
            "sasl.password=hunter2,no.such.property=1",
            "no.such.property",
        ),
        ("KAFKA_PROPERTIES", "sasl.password=hunter2,acks=1", "acks"),
        (
            "REDIS_URL",
            "redis://:hunter2@a:1,redis://:hunter2@b:2",
            "REDIS_CLUSTER",
        ),
        ("DATABASE_URL", "postgres://u:hunter2@h/db", "mysql://"),
        ("REDIS_TLS_CA_FILE", "/nonexistent/ca.pem", "cannot be read"),
    ] {
        let (code, _, stderr) = firstcome(&["serve"], &[(var, value)]).await;
        assert_eq!(code, Some(2), "{var}={value}: {stderr}");
        assert!(
            stderr.contains(var) && stderr.contains(says),
            "{var}: {stderr}"
        );
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
    // An empty variable is unset: the default holds and the configuration is accepted; this
    // migrate then fails on the database, which nothing listens for (exit 1, not 2).
    let (code, stdout, stderr) = firstcome(
        &["migrate"],
        &[
            ("RELAY_WORKERS", ""),
            ("KAFKA_BOOTSTRAP_SERVERS", ""),
            (
                "DATABASE_URL",
                "mysql://firstcome:firstcome@127.0.0.1:1/unreachable",
            ),
            ("DB_CONNECT_TIMEOUT_MS", "500"),
        ],
    )
    .await;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(!stderr.contains("configuration error"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_properties_reach_the_relay_producer() {
    // One broker, two services: the first speaks to it as configured by default and publishes;
    // the second is told by KAFKA_PROPERTIES to speak TLS, which this broker does not: nothing
    // gets through, Kafka is reported unreachable and the event waits in the outbox.
    let broker = start_broker();
    let on = |properties: &str| {
        let properties = firstcome::config::KafkaProperties::parse(properties).expect("valid");
        let bootstrap = broker.bootstrap_servers().to_string();
        async move {
            let mut settings = with_relay(test_settings().await);
            settings.kafka.bootstrap_servers = Some(bootstrap);
            settings.kafka.properties = properties;
            spawn_app_with(settings).await
        }
    };

    let plain = on("client.id=firstcome-plain-test").await;
    let campaign = plain.open_campaign(5, 1).await;
    assert_eq!(plain.join(campaign, 1, 1).await.status, 201);
    plain.wait_for_outbox_drained(Duration::from_secs(30)).await;
    assert_eq!(plain.outbox_count("PUBLISHED").await, 1);

    let tls = on("security.protocol=SSL,client.id=firstcome-tls-test").await;
    let campaign = tls.open_campaign(5, 1).await;
    assert_eq!(tls.join(campaign, 1, 1).await.status, 201);
    wait_until(
        "Kafka to be reported unreachable",
        Duration::from_secs(30),
        || async { tls.admin_get("/health/ready").await.body["kafka"]["state"] == "UNREACHABLE" },
    )
    .await;
    assert_eq!(tls.outbox_count("PUBLISHED").await, 0);
    assert_eq!(tls.outbox_count("PENDING").await, 1);
    tls.stop().await.expect("clean stop");
    plain.stop().await.expect("clean stop");
}

/// `RUST_LOG` filters the log, as the variable or as `--rust-log`: `migrate` logs "Migrations
/// applied." at info, which `warn` hides.
#[tokio::test]
async fn rust_log_filters_the_log_as_a_variable_and_as_a_flag() {
    let url = crate::spawn::create_database().await;
    let env = [("DATABASE_URL", url.as_str())];
    let (code, stdout, stderr) = firstcome(&["migrate"], &env).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("Migrations applied."),
        "info by default: {stdout}"
    );
    for (args, env) in [
        (vec!["migrate", "--rust-log", "warn"], env.to_vec()),
        (vec!["migrate"], vec![env[0], ("RUST_LOG", "warn")]),
    ] {
        let (code, stdout, stderr) = firstcome(&args, &env).await;
        assert_eq!(code, Some(0), "{args:?}: {stdout}{stderr}");
        assert!(
            !stdout.contains("Migrations applied."),
            "{args:?}: {stdout}"
        );
    }
}

/// A reader that closes the pipe early (`firstcome openapi | head`) ends the output quietly: exit
/// 0 and no panic message.
#[tokio::test]
async fn a_closed_stdout_ends_a_printed_document_quietly() {
    for command in ["openapi", "asyncapi", "config-table"] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_firstcome"))
            .arg(command)
            .env_clear()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start firstcome");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("firstcome exits");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{command}: {stderr}");
        assert!(!stderr.contains("panicked"), "{command}: {stderr}");
    }
}
