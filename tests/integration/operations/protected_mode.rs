//! Protected mode (docs/design.md §17) as the real binary applies it: `serve` on an address other
//! hosts can reach refuses to start until `USER_AUTH` is said out loud and `ADMISSION_SECRET` is
//! set, naming the variable and the fix; `migrate` (which listens on nothing) is not held to it;
//! and `USER_AUTH=none` said out loud starts, with a WARN and `/health/ready` saying identity is
//! off.

use std::{process::Stdio, time::Duration};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::binary::{fixture, run_firstcome};

const SECRET: &str = "protected-mode-admission-secret-0123456789";

#[tokio::test]
async fn serve_on_an_exposed_address_refuses_the_laptop_defaults_naming_the_variable() {
    for addr in ["0.0.0.0:0", "[::]:0"] {
        for (args, extra, var, fix) in [
            (&["serve"][..], vec![], "USER_AUTH", "set USER_AUTH=jwt"),
            // `serve` is also what runs without a subcommand.
            (&[][..], vec![], "USER_AUTH", "USER_AUTH=none if a gateway"),
            (
                &["serve"][..],
                vec![("USER_AUTH", "none")],
                "ADMISSION_SECRET",
                "set ADMISSION_SECRET",
            ),
        ] {
            let mut env = vec![("HTTP_ADDR", addr)];
            env.extend(extra);
            let run = run_firstcome(args, &env).await;
            let stderr = &run.stderr;
            assert_eq!(run.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
            assert!(
                stderr.contains(&format!(
                    "{var} is unset and HTTP_ADDR={addr} is not loopback"
                )),
                "{env:?}: {stderr}"
            );
            assert!(stderr.contains(fix), "{env:?}: {stderr}");
            assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        }
    }
}

#[tokio::test]
async fn migrate_listens_on_nothing_and_is_not_held_to_it() {
    let (_broker, db_url, _prefix) = fixture().await;
    let run = run_firstcome(
        &["migrate"],
        &[("HTTP_ADDR", "0.0.0.0:0"), ("DATABASE_URL", &db_url)],
    )
    .await;
    assert_eq!(run.status.code(), Some(0), "{}{}", run.stdout, run.stderr);
}

#[tokio::test]
async fn user_auth_none_said_out_loud_starts_with_a_warning_and_ready_says_identity_is_off() {
    let (broker, db_url, prefix) = fixture().await;
    let redis_url = crate::spawn::redis_url();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_firstcome"))
        .arg("serve")
        .env_clear()
        .envs([
            ("HTTP_ADDR", "0.0.0.0:0"),
            ("USER_AUTH", "none"),
            ("ADMISSION_SECRET", SECRET),
            ("DATABASE_URL", db_url.as_str()),
            ("REDIS_URL", redis_url.as_str()),
            ("REDIS_KEY_PREFIX", prefix.as_str()),
            ("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap_servers()),
            ("ADMIN_TOKEN", "Pm8Rk3Tz6Wq1Lx9Hn4Vc7Jb2Fd5Gs0p"),
            ("LOG_FORMAT", "json"),
            ("RUST_LOG", "warn,firstcome::startup=info"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the firstcome binary");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();

    // Up to the "Listening." line, whose address has the port the kernel picked.
    let mut seen = Vec::new();
    let port = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("reads its log") {
            let entry: Value = serde_json::from_str(&line).unwrap_or(json!({}));
            seen.push(entry.clone());
            if entry["message"] == "Listening." {
                let addr = entry["addr"].as_str().expect("the address").to_string();
                return addr.rsplit(':').next().expect("a port").parse::<u16>().ok();
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_else(|| panic!("no Listening. line: {seen:?}"));

    let warned: Vec<&Value> = seen
        .iter()
        .filter(|e| e["level"] == "WARN" && e["http_addr"] == "0.0.0.0:0")
        .collect();
    assert_eq!(warned.len(), 1, "{seen:?}");
    let message = warned[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("USER_AUTH=none") && message.contains("identity is off"),
        "{message}"
    );

    let ready: Value = reqwest::get(format!("http://127.0.0.1:{port}/health/ready"))
        .await
        .expect("an answer")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        ready["identity"],
        json!({"userAuth": "none", "exposed": true}),
        "{ready}"
    );
    child.kill().await.ok();
}
