// Flash sale: N looping VUs (or, with RATE, a fixed number of requests per second) hammer one
// fresh campaign's participation endpoint.
//
// PATH_KIND=outbox → POST /api/v1/campaigns/{id}/participations       (Redis gate + outbox)
// PATH_KIND=sync   → POST /api/v1/campaigns/{id}/participations/sync  (the synchronous baseline)
// CEILING=1        → the same iteration (draw the user, build the body, send it, read and count
//                    the answer) sent as GET /health/live: the ceiling of docs/design.md §10,
//                    measured with the join's own client work (no campaign is created)
//
// setup() creates the campaign through the admin API; its id reaches handleSummary as
// data.setup_data and lands in SUMMARY_FILE, so scripts/bench.sh can check the result through
// the API afterwards. 201 (won) and 409 (SOLD_OUT, ALREADY_PARTICIPATED) are expected answers;
// http_req_failed counts only the rest.
//
//   k6 run -e ADMIN_TOKEN=... -e PATH_KIND=outbox -e VUS=500 -e DURATION=30s k6/flash-sale.js
//   k6 run -e ADMIN_TOKEN=... -e PATH_KIND=sync -e RATE=2000 -e DURATION=30s k6/flash-sale.js
//
// Environment: BASE_URL, BASE_URLS, ADMIN_TOKEN, PATH_KIND, VUS, RATE, PRE_VUS, MAX_VUS, DURATION, STOCK,
// USERS, REPEAT_SHARE, USER_IDS, REQUEST_TIMEOUT, SUMMARY_FILE, TOKENS_FILE, CEILING, BUCKETS
// (see k6/README.md).
//
// TOKENS_FILE: for a service with USER_AUTH=jwt, one token per line, line N for user N (minted
// before the run: `firstcome token --user 1 --count 200000 > tokens.txt`, or
// scripts/mint-es256.py); each join carries its user's token. User ids past the file's end abort.

import http from 'k6/http';
import { SharedArray } from 'k6/data';
import { Counter } from 'k6/metrics';
import exec from 'k6/execution';
import { env, envNumber, buildSummary, loadShape, TREND_STATS } from './lib/summary.js';

const BASE_URL = env('BASE_URL', 'http://127.0.0.1:8080').replace(/\/+$/, '');
// BASE_URLS (comma-separated, optional): several instances of one deployment; VU n sends its joins
// to the (n mod count)-th, setup() uses BASE_URL. Unset: every join goes to BASE_URL.
const JOIN_URLS = env('BASE_URLS', '')
  .split(',')
  .map((u) => u.trim().replace(/\/+$/, ''))
  .filter((u) => u.length > 0);
const ADMIN_TOKEN = env('ADMIN_TOKEN', '');
// CAMPAIGN_ID (optional): join this existing campaign instead of creating one in setup() (a
// benchmark that keeps the campaign's creation out of what it measures creates it first).
const CAMPAIGN_ID = env('CAMPAIGN_ID', '');
const PATH_KIND = env('PATH_KIND', 'outbox');
const CEILING = env('CEILING', '0') === '1';
const VUS = envNumber('VUS', 500, 1, 100000);
const DURATION = env('DURATION', '30s');
const STOCK = envNumber('STOCK', 1000, 1, 10000000);
const BUCKETS = envNumber('BUCKETS', 1, 1, 1024);
const USERS = envNumber('USERS', 200000, 1, Number.MAX_SAFE_INTEGER);
const REPEAT_SHARE = envNumber('REPEAT_SHARE', 0.1, 0, 1);
// USER_IDS=random (default): the flash sale's draw below. USER_IDS=distinct: every request has its
// own user id (a big campaign / coupon drop, scripts/bench-big-campaign.sh); USERS and
// REPEAT_SHARE are then ignored.
const USER_IDS = env('USER_IDS', 'random');
if (USER_IDS !== 'random' && USER_IDS !== 'distinct') {
  throw new Error(`USER_IDS=${USER_IDS}: expected "random" or "distinct"`);
}
const REQUEST_TIMEOUT = env('REQUEST_TIMEOUT', '30s');
const TOKENS_FILE = env('TOKENS_FILE', '');
// One copy for every VU (SharedArray), read once in the init context.
const TOKENS = TOKENS_FILE
  ? new SharedArray('tokens', () => open(TOKENS_FILE).split('\n').filter((line) => line.length > 0))
  : null;
const SCENARIO = 'flash_sale';
const SHAPE = loadShape(SCENARIO, VUS, DURATION); // closed model, or open with RATE

const SUFFIX = { outbox: '', sync: '/sync' };
if (!(PATH_KIND in SUFFIX)) {
  throw new Error(`PATH_KIND=${PATH_KIND}: expected "outbox" or "sync"`);
}

// Per PATH_KIND: the outbox path has the targets of docs/design.md §10 (p99, no 5xx); the sync
// baseline is expected to be slow, so it only has to answer correctly. The `count>=0` and
// `max>=0` entries are always true: they only make k6 compute the scenario's submetrics, which
// leave out the setup() requests; WINS is the latency of the 201s alone (a few in a thousand of
// the requests, but the ones that reach MySQL).
const WINS = `http_req_duration{scenario:${SCENARIO},status:201}`;
const THRESHOLDS = {
  outbox: {
    [`http_reqs{scenario:${SCENARIO}}`]: ['count>=0'],
    [WINS]: ['max>=0'],
    [`http_req_duration{scenario:${SCENARIO}}`]: [{ threshold: 'p(99)<100', abortOnFail: false }],
    [`http_req_failed{scenario:${SCENARIO}}`]: [{ threshold: 'rate<0.01', abortOnFail: false }],
    server_errors: [{ threshold: 'count<1', abortOnFail: false }],
  },
  sync: {
    [`http_reqs{scenario:${SCENARIO}}`]: ['count>=0'],
    [WINS]: ['max>=0'],
    [`http_req_duration{scenario:${SCENARIO}}`]: ['max>=0'],
    [`http_req_failed{scenario:${SCENARIO}}`]: [{ threshold: 'rate<0.01', abortOnFail: false }],
  },
};

export const options = {
  scenarios: SHAPE.scenarios,
  // The ceiling is judged like the outbox path it is the limit of.
  thresholds: THRESHOLDS[CEILING ? 'outbox' : PATH_KIND],
  summaryTrendStats: TREND_STATS,
  userAgent: 'firstcome-k6/flash-sale',
};

const accepted = new Counter('accepted'); // 201: won
const soldOut = new Counter('sold_out'); // 409 SOLD_OUT
const alreadyParticipated = new Counter('already_participated'); // 409 ALREADY_PARTICIPATED
const serverErrors = new Counter('server_errors'); // any 5xx
const healthOk = new Counter('health_ok'); // CEILING=1: 200 {"status":"ok"}

http.setResponseCallback(CEILING ? http.expectedStatuses(200) : http.expectedStatuses(201, 409));
const HEALTH_URL = `${BASE_URL}/health/live`;

// setup() reports problems by returning { error } instead of throwing: the first iteration then
// aborts the test, and handleSummary still receives the message (and the campaign id, if any)
// through data.setup_data, so the summary file says why there are no numbers.
export function setup() {
  if (CEILING) {
    console.log(`ceiling: the join's iteration sent to GET ${HEALTH_URL}`);
    return { ceiling: true, baseUrl: BASE_URL, pathKind: PATH_KIND };
  }
  if (CAMPAIGN_ID.length > 0) {
    if (!/^[1-9][0-9]*$/.test(CAMPAIGN_ID)) return { error: `CAMPAIGN_ID=${CAMPAIGN_ID}: expected a campaign's id` };
    return probed({ id: Number(CAMPAIGN_ID) });
  }
  if (ADMIN_TOKEN.length === 0) {
    return { error: 'ADMIN_TOKEN is not set: setup() needs it to create the campaign' };
  }
  const spec = {
    name: `k6 flash sale (${PATH_KIND}) ${new Date().toISOString()}`,
    totalStock: STOCK,
    perUserLimit: 1,
  };
  // BUCKETS: the campaign's stock split over that many buckets (docs/design.md §21).
  if (BUCKETS > 1) spec.buckets = BUCKETS;
  const body = JSON.stringify(spec);
  const res = http.post(`${BASE_URL}/api/v1/campaigns`, body, {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${ADMIN_TOKEN}` },
    tags: { name: 'create campaign' },
    timeout: '10s',
  });
  if (res.status !== 201) {
    return { error: `creating the campaign failed: HTTP ${res.status} ${String(res.body).slice(0, 300)}` };
  }
  return probed(res.json());
}

// setup()'s result for `campaign`, once its join endpoint answered the probe.
function probed(campaign) {
  const result = { campaignId: campaign.id, campaign, baseUrl: BASE_URL, pathKind: PATH_KIND };
  // Probe the endpoint with an empty body: it must answer 400 VALIDATION_FAILED (userId missing)
  // and write nothing. 404/405 means this build does not have the endpoint; measuring those
  // answers would produce numbers that mean nothing.
  const probe = http.post(participationUrl(campaign.id), '{}', {
    headers: { 'Content-Type': 'application/json' },
    tags: { name: 'probe' },
    responseCallback: http.expectedStatuses(400),
    timeout: '10s',
  });
  if (probe.status !== 400) {
    result.error =
      `POST ${participationPath(campaign.id)} answered HTTP ${probe.status} to an empty body ` +
      `(expected 400 VALIDATION_FAILED): the ${PATH_KIND} endpoint is missing or broken in this build`;
    result.endpointMissing = probe.status === 404 || probe.status === 405;
    return result;
  }
  const load = SHAPE.config.model === 'open' ? `${SHAPE.config.rate} requests/s` : `${VUS} VUs`;
  const how = CAMPAIGN_ID.length > 0 ? 'given' : 'created';
  console.log(`campaign ${campaign.id} ${how}: stock ${STOCK}, ${PATH_KIND} path, ${load} for ${DURATION}`);
  return result;
}

function participationPath(campaignId) {
  return `/api/v1/campaigns/${campaignId}/participations${SUFFIX[PATH_KIND]}`;
}

function participationUrl(campaignId) {
  return `${BASE_URL}${participationPath(campaignId)}`;
}

// This VU's join URL: its instance of BASE_URLS, or BASE_URL.
function joinUrl(campaignId) {
  const base = JOIN_URLS.length > 0 ? JOIN_URLS[__VU % JOIN_URLS.length] : BASE_URL;
  return `${base}${participationPath(campaignId)}`;
}

// Each VU remembers its last few user ids; REPEAT_SHARE of the requests reuse one of them
// (double clicks, retries), the rest draw a fresh id from [1, USERS].
const RECENT_MAX = 32;
const recent = [];

function nextUserId() {
  // __VU is 1..SHAPE.vuIds (VUS, or MAX_VUS with RATE) and __ITER counts this VU's iterations
  // from 0: ITER * vuIds + VU never repeats.
  if (USER_IDS === 'distinct') return __ITER * SHAPE.vuIds + __VU;
  if (recent.length > 0 && Math.random() < REPEAT_SHARE) {
    return recent[Math.floor(Math.random() * recent.length)];
  }
  const id = 1 + Math.floor(Math.random() * USERS);
  if (recent.length < RECENT_MAX) recent.push(id);
  else recent[Math.floor(Math.random() * RECENT_MAX)] = id;
  return id;
}

const PARAMS = {
  headers: { 'Content-Type': 'application/json' },
  tags: { name: CEILING ? 'ceiling (health live)' : `participate (${PATH_KIND})` },
  timeout: REQUEST_TIMEOUT,
};

// The request's parameters: PARAMS, with the user's token when TOKENS_FILE is set.
function paramsFor(userId) {
  if (TOKENS === null) return PARAMS;
  if (userId > TOKENS.length) exec.test.abort(`TOKENS_FILE has ${TOKENS.length} tokens; user ${userId} has none`);
  return {
    ...PARAMS,
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKENS[userId - 1]}` },
  };
}

export default function (data) {
  if (data.error) exec.test.abort(`setup failed: ${data.error}`);
  const userId = nextUserId();
  const body = JSON.stringify({ userId, quantity: 1 });
  const res = CEILING
    ? http.request('GET', HEALTH_URL, body, paramsFor(userId))
    : http.post(joinUrl(data.campaignId), body, paramsFor(userId));
  if (res.status === 201) {
    accepted.add(1);
  } else if (res.status === 409 || (CEILING && res.status === 200)) {
    // A substring test is enough and costs the load generator far less than JSON parsing. The
    // ceiling's answer goes through the same tests (and then its own counter).
    const b = typeof res.body === 'string' ? res.body : '';
    if (b.indexOf('SOLD_OUT') >= 0) soldOut.add(1);
    else if (b.indexOf('ALREADY_PARTICIPATED') >= 0) alreadyParticipated.add(1);
    else if (CEILING && b.indexOf('"ok"') >= 0) healthOk.add(1);
  } else if (res.status >= 500) {
    serverErrors.add(1);
  }
}

function count(data, name) {
  const m = data.metrics[name];
  return m && m.values ? m.values.count || 0 : 0;
}

export function handleSummary(data) {
  const setupData = data.setup_data || {};
  const wins = (data.metrics[WINS] || {}).values || {};
  const ms = (v) => (v === undefined ? 'n/a' : `${v.toFixed(2)}ms`);
  const counts = {
    accepted: count(data, 'accepted'),
    soldOut: count(data, 'sold_out'),
    alreadyParticipated: count(data, 'already_participated'),
    serverErrors: count(data, 'server_errors'),
    healthOk: count(data, 'health_ok'),
  };
  return buildSummary(
    data,
    SCENARIO,
    {
      script: 'flash-sale',
      pathKind: CEILING ? 'ceiling' : PATH_KIND,
      campaignId: setupData.campaignId === undefined ? null : setupData.campaignId,
      setupError: setupData.error || (data.setup_data === undefined ? 'setup() did not return' : null),
      endpointMissing: setupData.endpointMissing === true,
      setupData,
      counts,
      config: {
        baseUrl: BASE_URL,
        ...SHAPE.config,
        stock: STOCK,
        users: USERS,
        repeatShare: REPEAT_SHARE,
        userIds: USER_IDS,
        tokens: TOKENS === null ? 'none' : `${TOKENS.length} from ${TOKENS_FILE}`,
      },
    },
    [
      ...(setupData.error ? [`SETUP FAILED ........ ${setupData.error}`] : []),
      `campaign ............ ${setupData.campaignId === undefined ? 'n/a' : setupData.campaignId}`,
      `201 accepted ........ ${counts.accepted} (latency p50 ${ms(wins.med)}  p99 ${ms(wins['p(99)'])})`,
      `409 SOLD_OUT ........ ${counts.soldOut}`,
      `409 ALREADY_PART. ... ${counts.alreadyParticipated}`,
      `5xx ................. ${counts.serverErrors}`,
      ...(CEILING ? [`200 health (ceiling)  ${counts.healthOk}`] : []),
    ],
  );
}
