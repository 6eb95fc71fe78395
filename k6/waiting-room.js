// Waiting room: USERS users queue for a QUEUE campaign of STOCK units (docs/design.md §16); the
// room admits ADMISSION_RATE users a second; each admitted user joins with its token, then tries
// it again (a replay) and lends it to another user (a borrowed token). Every waiting user polls
// its ticket about once a second until it is ADMITTED, SOLD_OUT or EXPIRED.
//
// VUS VUs share the users: VU v queues users v, v + VUS, v + 2·VUS, … at the start (so all of
// them are in the queue within the first seconds), then polls its tickets round-robin, one
// round a second, until each has an outcome. Wins must equal STOCK, and a replayed or borrowed
// token must never win (replay_wins and borrowed_wins stay 0).
//
//   k6 run -e ADMIN_TOKEN=... -e USERS=20000 -e STOCK=500 -e ADMISSION_RATE=50 k6/waiting-room.js
//
// The service must not limit this one client by IP (RATE_LIMIT_IP_PER_SECOND=0): every simulated
// user comes from 127.0.0.1. scripts/bench-waiting-room.sh starts it so and reports the run.
//
// Environment: BASE_URL, ADMIN_TOKEN, USERS (20000), STOCK (500), ADMISSION_RATE (50), VUS (500),
// MAX_SECONDS (300: a VU gives up on tickets without an outcome after this long), SUMMARY_FILE.

import http from 'k6/http';
import { sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import exec from 'k6/execution';
import { env, envNumber } from './lib/summary.js';

const BASE_URL = env('BASE_URL', 'http://127.0.0.1:8080').replace(/\/+$/, '');
const ADMIN_TOKEN = env('ADMIN_TOKEN', '');
const USERS = envNumber('USERS', 20000, 1, 10000000);
const STOCK = envNumber('STOCK', 500, 1, 10000000);
const ADMISSION_RATE = envNumber('ADMISSION_RATE', 50, 1, 10000);
const VUS = Math.min(envNumber('VUS', 500, 1, 100000), USERS);
const MAX_SECONDS = envNumber('MAX_SECONDS', 300, 1, 86400);
const SUMMARY_FILE = env('SUMMARY_FILE', '');

const queued = new Counter('queued');
const admitted = new Counter('admitted');
const soldOut = new Counter('sold_out');
const expired = new Counter('expired');
const unresolved = new Counter('unresolved');
const wins = new Counter('wins');
const joinRefused = new Counter('join_refused');
const replayWins = new Counter('replay_wins');
const replaysRefused = new Counter('replays_refused');
const borrowedWins = new Counter('borrowed_wins');
const borrowedRefused = new Counter('borrowed_refused');
const rateLimited = new Counter('rate_limited');
const errors = new Counter('errors');
const waitSeconds = new Trend('admission_wait_seconds');

export const options = {
  scenarios: {
    waiting_room: { executor: 'per-vu-iterations', vus: VUS, iterations: 1, maxDuration: `${MAX_SECONDS + 60}s` },
  },
  // Every answer is counted by kind above; only transport failures and 5xx count as failed.
  thresholds: { errors: ['count==0'] },
};

const JSON_HEADERS = { headers: { 'content-type': 'application/json' } };

export function setup() {
  if (!ADMIN_TOKEN) throw new Error('ADMIN_TOKEN is required');
  const res = http.post(
    `${BASE_URL}/api/v1/campaigns`,
    JSON.stringify({
      name: 'k6 waiting room',
      totalStock: STOCK,
      admission: 'QUEUE',
      admissionRatePerSecond: ADMISSION_RATE,
    }),
    { headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` } },
  );
  if (res.status !== 201) throw new Error(`create campaign: ${res.status} ${res.body}`);
  return { campaign: res.json('id'), startedAt: Date.now() };
}

function post(path, body) {
  const res = http.post(`${BASE_URL}${path}`, JSON.stringify(body), JSON_HEADERS);
  if (res.status === 0 || res.status >= 500) errors.add(1);
  if (res.status === 429) rateLimited.add(1);
  return res;
}

function join(campaign, userId, token) {
  return post(`/api/v1/campaigns/${campaign}/participations`, { userId, admissionToken: token });
}

export default function (data) {
  const campaign = data.campaign;
  const vu = exec.vu.idInTest; // 1..VUS
  const tickets = [];
  for (let user = vu; user <= USERS; user += VUS) {
    const res = post(`/api/v1/campaigns/${campaign}/queue`, { userId: user });
    if (res.status !== 202) continue;
    queued.add(1);
    tickets.push({ user, ticket: res.json('ticket'), queuedAt: Date.now(), state: res.json('state'), token: res.json('admissionToken') });
  }
  const deadline = Date.now() + MAX_SECONDS * 1000;
  for (const t of tickets) if (t.state === 'SOLD_OUT') soldOut.add(1);
  let open = tickets.filter((t) => t.state !== 'SOLD_OUT');
  while (open.length > 0 && Date.now() < deadline) {
    const round = Date.now();
    for (const t of open) {
      if (t.state !== 'ADMITTED') {
        const res = http.get(`${BASE_URL}/api/v1/campaigns/${campaign}/queue/${t.ticket}`);
        if (res.status === 0 || res.status >= 500) { errors.add(1); continue; }
        if (res.status === 429) { rateLimited.add(1); continue; }
        t.state = res.json('state');
        t.token = res.json('admissionToken');
      }
      if (t.state === 'ADMITTED') {
        admitted.add(1);
        waitSeconds.add((Date.now() - t.queuedAt) / 1000);
        const won = join(campaign, t.user, t.token);
        if (won.status === 201) {
          wins.add(1);
          // The same token again, and lent to another user: neither may win.
          const replay = join(campaign, t.user, t.token);
          (replay.status === 201 ? replayWins : replaysRefused).add(1);
          const borrowed = join(campaign, t.user + USERS, t.token);
          (borrowed.status === 201 ? borrowedWins : borrowedRefused).add(1);
        } else {
          joinRefused.add(1);
        }
        t.state = 'DONE';
      } else if (t.state === 'SOLD_OUT') {
        soldOut.add(1);
      } else if (t.state === 'EXPIRED') {
        expired.add(1);
      }
    }
    open = open.filter((t) => t.state === 'WAITING');
    const spent = (Date.now() - round) / 1000;
    if (open.length > 0 && spent < 1) sleep(1 - spent);
  }
  unresolved.add(open.length);
}

function count(data, name) {
  const m = data.metrics[name];
  return m ? m.values.count : 0;
}

export function handleSummary(data) {
  const names = ['queued', 'admitted', 'sold_out', 'expired', 'unresolved', 'wins', 'join_refused',
    'replay_wins', 'replays_refused', 'borrowed_wins', 'borrowed_refused', 'rate_limited', 'errors'];
  const out = { users: USERS, stock: STOCK, admission_rate: ADMISSION_RATE, vus: VUS, campaign: data.setup_data && data.setup_data.campaign };
  for (const n of names) out[n] = count(data, n);
  const wait = data.metrics.admission_wait_seconds;
  if (wait) out.admission_wait_seconds = { avg: wait.values.avg, p95: wait.values['p(95)'], max: wait.values.max };
  const reqs = data.metrics.http_reqs;
  out.requests = reqs ? reqs.values.count : 0;
  out.duration_seconds = data.state.testRunDurationMs / 1000;
  const text = Object.entries(out).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join('\n') + '\n';
  const files = { stdout: text };
  if (SUMMARY_FILE) files[SUMMARY_FILE] = JSON.stringify(out, null, 2);
  return files;
}
