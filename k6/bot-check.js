// The waiting room's door with the bot check on (docs/design.md §16 "Bots at the door"): every
// payload of PAYLOADS (a JSON array, solved beforehand by `cargo run --release --example
// bot_check_cost solve …` for CAMPAIGN) queues one new user with it, once; with PAYLOADS unset,
// as many users queue without one (the room with the check off, for the comparison). VUS VUs
// send them as fast as the service answers.
//
//   k6 run -e CAMPAIGN=1 -e USERS=400 -e PAYLOADS=/tmp/payloads.json k6/bot-check.js
//
// scripts/bench-bot-check.sh runs it twice (check off, check on) and reports the service's CPU
// per ticket of each. Environment: BASE_URL, CAMPAIGN, USERS (ignored with PAYLOADS), PAYLOADS,
// VUS (16), SUMMARY_FILE, REPLAY.

import http from 'k6/http';
import { Counter } from 'k6/metrics';
import { SharedArray } from 'k6/data';
import exec from 'k6/execution';
import { env, envNumber } from './lib/summary.js';

const BASE_URL = env('BASE_URL', 'http://127.0.0.1:8080').replace(/\/+$/, '');
const CAMPAIGN = envNumber('CAMPAIGN', 1, 1, 1e15);
const PAYLOADS = env('PAYLOADS', '');
const payloads = new SharedArray('payloads', () => (PAYLOADS ? JSON.parse(open(PAYLOADS)) : []));
// REPLAY=1: every user sends PAYLOADS' first payload (USERS of them): one challenge tried again
// and again, as an attacker with one wrong solution would (§16: it buys one verification).
const REPLAY = env('REPLAY', '0') === '1';
const USERS = PAYLOADS && !REPLAY ? payloads.length : envNumber('USERS', 400, 1, 10000000);
const VUS = Math.min(envNumber('VUS', 16, 1, 10000), USERS);
const SUMMARY_FILE = env('SUMMARY_FILE', '');

const queued = new Counter('queued');
const refused = new Counter('refused');

export const options = {
  scenarios: {
    door: { executor: 'shared-iterations', vus: VUS, iterations: USERS, maxDuration: '10m' },
  },
  summaryTrendStats: ['avg', 'p(50)', 'p(95)', 'p(99)', 'max'],
};

export default function () {
  const i = exec.scenario.iterationInTest;
  const body = { userId: i + 1 };
  if (PAYLOADS) body.botCheck = payloads[REPLAY ? 0 : i];
  const reply = http.post(`${BASE_URL}/api/v1/campaigns/${CAMPAIGN}/queue`, JSON.stringify(body), {
    headers: { 'content-type': 'application/json' },
  });
  if (reply.status === 202) queued.add(1);
  else refused.add(1);
}

export function handleSummary(data) {
  const count = (name) => (data.metrics[name] ? data.metrics[name].values.count : 0);
  const d = data.metrics.http_req_duration.values;
  const summary = {
    users: USERS,
    queued: count('queued'),
    refused: count('refused'),
    duration_seconds: data.state.testRunDurationMs / 1000,
    latency_ms: { avg: d.avg, p50: d['p(50)'], p95: d['p(95)'], p99: d['p(99)'] },
  };
  const out = { stdout: JSON.stringify(summary) + '\n' };
  if (SUMMARY_FILE) out[SUMMARY_FILE] = JSON.stringify(summary, null, 2);
  return out;
}
