// The machine's ceiling: the same VUS/DURATION (or RATE/DURATION) load as flash-sale.js against
// GET /health/live, which touches neither Redis nor MySQL. docs/design.md §10 compares the outbox
// path's throughput with this run's.
//
//   k6 run -e VUS=500 -e DURATION=30s -e SUMMARY_FILE=k6/results/health.json k6/health.js
//
// Environment: BASE_URL, VUS, RATE, PRE_VUS, MAX_VUS, DURATION, REQUEST_TIMEOUT, SUMMARY_FILE
// (see k6/README.md).

import http from 'k6/http';
import { Counter } from 'k6/metrics';
import { env, envNumber, buildSummary, loadShape, TREND_STATS } from './lib/summary.js';

const BASE_URL = env('BASE_URL', 'http://127.0.0.1:8080').replace(/\/+$/, '');
const VUS = envNumber('VUS', 500, 1, 100000);
const DURATION = env('DURATION', '30s');
const REQUEST_TIMEOUT = env('REQUEST_TIMEOUT', '30s');
const SCENARIO = 'health_live';
const SHAPE = loadShape(SCENARIO, VUS, DURATION); // closed model, or open with RATE

export const options = {
  scenarios: SHAPE.scenarios,
  thresholds: {
    // Always true: they only make k6 compute the scenario's submetrics (see flash-sale.js).
    [`http_reqs{scenario:${SCENARIO}}`]: ['count>=0'],
    [`http_req_duration{scenario:${SCENARIO}}`]: ['max>=0'],
    [`http_req_failed{scenario:${SCENARIO}}`]: [{ threshold: 'rate<0.01', abortOnFail: false }],
  },
  summaryTrendStats: TREND_STATS,
  userAgent: 'firstcome-k6/health',
};

const serverErrors = new Counter('server_errors');

http.setResponseCallback(http.expectedStatuses(200));

const URL = `${BASE_URL}/health/live`;
const PARAMS = { tags: { name: 'health live' }, timeout: REQUEST_TIMEOUT };

export default function () {
  const res = http.get(URL, PARAMS);
  if (res.status >= 500) serverErrors.add(1);
}

export function handleSummary(data) {
  const m = data.metrics.server_errors;
  const errors = m && m.values ? m.values.count || 0 : 0;
  return buildSummary(
    data,
    SCENARIO,
    {
      script: 'health',
      pathKind: 'health',
      counts: { serverErrors: errors },
      config: { baseUrl: BASE_URL, ...SHAPE.config },
    },
    [`5xx ................. ${errors}`],
  );
}
