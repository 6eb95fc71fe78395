//! What the proof-of-work bot check costs (docs/design.md §16 "Bots at the door"), run by
//! `scripts/bench-bot-check.sh`:
//!
//! - `bot_check_cost table [costs…]`: for each `BOT_CHECK_COST`, the service's CPU to sign a
//!   challenge and to verify one solution (median of 200), and the client's to solve one (mean
//!   of 20, native code, one core), as a table;
//! - `bot_check_cost solve <base URL> <campaign> <n> <out.json>`: asks the service for `n`
//!   challenges of the campaign, solves them on every core, and writes the payloads (a JSON
//!   array of strings) for `k6/bot-check.js`.

use std::time::{Duration, Instant};

use firstcome::bot_check::pow::solve;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("solve") if args.len() == 5 => solve_for(&args[1], &args[2], &args[3], &args[4]),
        Some("table") => table(&args[1..]),
        _ => {
            eprintln!(
                "usage: bot_check_cost table [costs…] | solve <base URL> <campaign> <n> <out.json>"
            );
            std::process::exit(2);
        }
    }
}

fn challenge(cost: u32) -> altcha::Challenge {
    altcha::create_challenge(altcha::CreateChallengeOptions {
        cost,
        key_prefix: "00".into(),
        expires_at: Some(chrono::Utc::now().timestamp() + 600),
        hmac_signature_secret: Some("bench-key".into()),
        ..Default::default()
    })
    .expect("challenge")
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn table(costs: &[String]) {
    let costs: Vec<u32> = if costs.is_empty() {
        vec![1_000, 5_000, 20_000]
    } else {
        costs.iter().map(|c| c.parse().expect("a cost")).collect()
    };
    println!("| BOT_CHECK_COST | sign a challenge | verify a solution | solve (client, native, 1 core) | tries |");
    println!("|---|---|---|---|---|");
    for cost in costs {
        let signing: Vec<Duration> = (0..200)
            .map(|_| {
                let t = Instant::now();
                let _ = challenge(cost);
                t.elapsed()
            })
            .collect();
        let (mut solving, mut tries) = (Duration::ZERO, 0u64);
        let mut solved = Vec::new();
        for _ in 0..20 {
            let c = challenge(cost);
            let t = Instant::now();
            let s = altcha::solve_challenge(altcha::SolveChallengeOptions::new(&c))
                .expect("solve")
                .expect("solved");
            solving += t.elapsed();
            tries += u64::from(s.counter) + 1;
            solved.push((c, s));
        }
        let verifying: Vec<Duration> = (0..200)
            .map(|i| {
                let (c, s) = &solved[i % solved.len()];
                let t = Instant::now();
                let v =
                    altcha::verify_solution(altcha::VerifySolutionOptions::new(c, s, "bench-key"))
                        .expect("verify");
                assert!(v.verified);
                t.elapsed()
            })
            .collect();
        println!(
            "| {cost} | {:.1} µs | {:.0} µs | {:.0} ms | {:.0} |",
            median(signing).as_secs_f64() * 1e6,
            median(verifying).as_secs_f64() * 1e6,
            solving.as_secs_f64() * 1e3 / 20.0,
            tries as f64 / 20.0
        );
    }
}

fn solve_for(base: &str, campaign: &str, n: &str, out: &str) {
    let n: usize = n.parse().expect("n");
    let url = format!(
        "{}/api/v1/campaigns/{campaign}/bot-check",
        base.trim_end_matches('/')
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let challenges: Vec<altcha::Challenge> = runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut all = Vec::with_capacity(n);
        for _ in 0..n {
            let reply = client.get(&url).send().await.expect("GET the challenge");
            assert!(reply.status().is_success(), "{url}: {}", reply.status());
            all.push(reply.json().await.expect("ALTCHA's JSON"));
        }
        all
    });
    let started = Instant::now();
    let cores = std::thread::available_parallelism().map_or(2, |c| c.get());
    let chunks: Vec<Vec<altcha::Challenge>> = challenges
        .chunks(n.div_ceil(cores).max(1))
        .map(<[altcha::Challenge]>::to_vec)
        .collect();
    let payloads: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|c| solve(c).expect("solved"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("solver"))
            .collect()
    });
    std::fs::write(out, serde_json::to_string(&payloads).expect("JSON")).expect("write");
    eprintln!(
        "solved {n} challenges in {:.1} s on {cores} cores",
        started.elapsed().as_secs_f64()
    );
}
