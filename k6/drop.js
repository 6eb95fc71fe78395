// A drop (docs/design.md §22): SIZES campaigns (the sizes of one sneaker) in one group with a
// limit of one pair per customer, each behind a waiting room with a waitlist (offerSeconds) and
// holds of HOLD_SECONDS. USERS users each queue for two sizes and join whichever admits them
// first; when the other admits them later, that join must be refused GROUP_LIMIT_REACHED. Of the
// first winners, PAY_PERCENT confirm at once; the others let their hold expire, so its unit comes
// back and is offered to the next waitlisted user, who pays. Every waiting ticket is polled about once a second
// until it has an outcome (a waitlisted one too: that is how its holder learns of an offer).
//
//   k6 run -e ADMIN_TOKEN=... -e USERS=20000 -e SIZES=10 -e STOCK_PER_SIZE=100 k6/drop.js
//
// The service must not limit this one client by IP (RATE_LIMIT_IP_PER_SECOND=0).
// scripts/bench-drop.sh starts it so and reports the run (with MySQL's figures: every unit sold,
// none over the limit, and the time from a return to the next waitlisted user's win).
//
// Environment: BASE_URL, ADMIN_TOKEN, USERS (20000), SIZES (10), STOCK_PER_SIZE (100),
// ADMISSION_RATE (200 per size), HOLD_SECONDS (20), OFFER_SECONDS (15), PAY_PERCENT (70), VUS
// (500), MAX_SECONDS (240), SUMMARY_FILE.

import http from 'k6/http';
import { sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import exec from 'k6/execution';
import { env, envNumber } from './lib/summary.js';

const BASE_URL = env('BASE_URL', 'http://127.0.0.1:8080').replace(/\/+$/, '');
const ADMIN_TOKEN = env('ADMIN_TOKEN', '');
const USERS = envNumber('USERS', 20000, 1, 10000000);
const SIZES = envNumber('SIZES', 10, 2, 100);
const STOCK_PER_SIZE = envNumber('STOCK_PER_SIZE', 100, 1, 1000000);
const ADMISSION_RATE = envNumber('ADMISSION_RATE', 200, 1, 10000);
const HOLD_SECONDS = envNumber('HOLD_SECONDS', 20, 1, 86400);
const OFFER_SECONDS = envNumber('OFFER_SECONDS', 15, 1, 86400);
const PAY_PERCENT = envNumber('PAY_PERCENT', 70, 0, 100);
const VUS = Math.min(envNumber('VUS', 500, 1, 100000), USERS);
const MAX_SECONDS = envNumber('MAX_SECONDS', 240, 1, 86400);
const SUMMARY_FILE = env('SUMMARY_FILE', '');

const wins = new Counter('wins');
const paid = new Counter('paid');
const leftToExpire = new Counter('left_to_expire');
const offerWins = new Counter('offer_wins');
const groupRefused = new Counter('group_refused');
const overLimitWins = new Counter('over_limit_wins');
const soldOutJoins = new Counter('sold_out_joins');
const waitlisted = new Counter('waitlisted');
const expiredTickets = new Counter('expired_tickets');
const rateLimited = new Counter('rate_limited');
const errors = new Counter('errors');
const offerToWin = new Trend('offer_to_win_seconds');

export const options = {
  scenarios: { drop: { executor: 'per-vu-iterations', vus: VUS, iterations: 1, maxDuration: `${MAX_SECONDS + 60}s` } },
  thresholds: { errors: ['count==0'], over_limit_wins: ['count==0'] },
};

const JSON_HEADERS = { headers: { 'content-type': 'application/json' } };

export function setup() {
  if (!ADMIN_TOKEN) throw new Error('ADMIN_TOKEN is required');
  const admin = { headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` } };
  const group = http.post(`${BASE_URL}/api/v1/groups`, JSON.stringify({ name: 'k6 drop', perUserLimit: 1 }), admin);
  if (group.status !== 201) throw new Error(`create group: ${group.status} ${group.body}`);
  const campaigns = [];
  for (let s = 0; s < SIZES; s++) {
    const res = http.post(`${BASE_URL}/api/v1/campaigns`, JSON.stringify({
      name: `k6 drop size ${38 + s}`, totalStock: STOCK_PER_SIZE, groupId: group.json('id'),
      admission: 'QUEUE', admissionRatePerSecond: ADMISSION_RATE, offerSeconds: OFFER_SECONDS,
      confirmWithinSeconds: HOLD_SECONDS,
    }), admin);
    if (res.status !== 201) throw new Error(`create campaign: ${res.status} ${res.body}`);
    campaigns.push(res.json('id'));
  }
  return { group: group.json('id'), campaigns };
}

function call(res) {
  if (res.status === 0 || res.status >= 500) errors.add(1);
  if (res.status === 429) rateLimited.add(1);
  return res;
}

function post(path, body) {
  return call(http.post(`${BASE_URL}${path}`, JSON.stringify(body), JSON_HEADERS));
}

/** The two sizes user `u` queues for. */
function sizesOf(u) {
  const a = u % SIZES;
  const b = (a + 1 + ((u * 7) % (SIZES - 1))) % SIZES;
  return [a, b];
}

/** Joins with an admission: a first win (paid or left to expire), or the limit's refusal. */
function join(t, user, campaigns) {
  const res = post(`/api/v1/campaigns/${campaigns[t.size]}/participations`, { userId: user.id, admissionToken: t.token });
  if (res.status === 201) {
    if (user.won) overLimitWins.add(1);
    user.won = true;
    wins.add(1);
    if (t.listed) { offerWins.add(1); offerToWin.add((Date.now() - t.offeredAt) / 1000); }
    // A waitlisted user who got an offer pays; of the first winners, PAY_PERCENT do.
    if (t.listed || (user.id * 37) % 100 < PAY_PERCENT) {
      const ok = post(`/api/v1/campaigns/${campaigns[t.size]}/participations/${user.id}/confirm`, {});
      if (ok.status === 200) paid.add(1);
    } else {
      leftToExpire.add(1);
    }
  } else if (res.status === 409 && res.json('code') === 'GROUP_LIMIT_REACHED') {
    groupRefused.add(1);
  } else if (res.status === 409 && res.json('code') === 'SOLD_OUT') {
    soldOutJoins.add(1);
  }
}

export default function (data) {
  const campaigns = data.campaigns;
  const tickets = [];
  for (let id = exec.vu.idInTest; id <= USERS; id += VUS) {
    const user = { id, won: false };
    for (const size of sizesOf(id)) {
      const res = post(`/api/v1/campaigns/${campaigns[size]}/queue`, { userId: id });
      if (res.status === 202) tickets.push({ user, size, ticket: res.json('ticket'), state: 'WAITING', listed: false });
    }
  }
  const deadline = Date.now() + MAX_SECONDS * 1000;
  let open = tickets;
  while (open.length > 0 && Date.now() < deadline) {
    const round = Date.now();
    for (const t of open) {
      const res = call(http.get(`${BASE_URL}/api/v1/campaigns/${campaigns[t.size]}/queue/${t.ticket}`));
      if (res.status !== 200) continue;
      const state = res.json('state');
      if (state === 'WAITLISTED' && !t.listed) { t.listed = true; waitlisted.add(1); }
      if (state === 'ADMITTED') {
        t.token = res.json('admissionToken');
        t.offeredAt = Date.now();
        join(t, t.user, campaigns);
        t.state = 'DONE';
      } else if (state === 'EXPIRED' || state === 'USED') {
        if (state === 'EXPIRED') expiredTickets.add(1);
        t.state = 'DONE';
      }
    }
    open = open.filter((t) => t.state !== 'DONE');
    const spent = (Date.now() - round) / 1000;
    if (open.length > 0 && spent < 1) sleep(1 - spent);
  }
}

function count(data, name) {
  const m = data.metrics[name];
  return m ? m.values.count : 0;
}

export function handleSummary(data) {
  const names = ['wins', 'paid', 'left_to_expire', 'offer_wins', 'group_refused', 'over_limit_wins',
    'sold_out_joins', 'waitlisted', 'expired_tickets', 'rate_limited', 'errors'];
  const setup = data.setup_data || {};
  const out = { users: USERS, sizes: SIZES, stock_per_size: STOCK_PER_SIZE, hold_seconds: HOLD_SECONDS,
    offer_seconds: OFFER_SECONDS, pay_percent: PAY_PERCENT, group: setup.group, campaigns: setup.campaigns };
  for (const n of names) out[n] = count(data, n);
  const lag = data.metrics.offer_to_win_seconds;
  if (lag) out.offer_to_win_seconds = { avg: lag.values.avg, p95: lag.values['p(95)'], max: lag.values.max };
  out.requests = data.metrics.http_reqs ? data.metrics.http_reqs.values.count : 0;
  out.duration_seconds = data.state.testRunDurationMs / 1000;
  const text = Object.entries(out).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join('\n') + '\n';
  const files = { stdout: text };
  if (SUMMARY_FILE) files[SUMMARY_FILE] = JSON.stringify(out, null, 2);
  return files;
}
