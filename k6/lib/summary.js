// Shared helpers for the firstcome k6 scripts: environment parsing and the end-of-test summary.
//
// The summary is our own, small text report on stdout plus a JSON file (SUMMARY_FILE) that
// scripts/bench_report.py reads. We do not import k6's jslib textSummary: it is a remote module
// and the benchmark machines have no internet access.

/** An environment variable, or `fallback` when unset or empty. */
export function env(name, fallback) {
  const v = __ENV[name];
  return v === undefined || v === '' ? fallback : v;
}

/** A numeric environment variable within [min, max]; throws (aborting the test) otherwise. */
export function envNumber(name, fallback, min, max) {
  const raw = env(name, String(fallback));
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new Error(`${name}=${raw}: expected a number between ${min} and ${max}`);
  }
  return n;
}

/** The trend statistics every script asks k6 to compute (p(50) is `med`). */
/** The one load shape both scripts use: `vus` looping VUs for `duration`. */
export function constantVus(name, vus, duration) {
  return { [name]: { executor: 'constant-vus', vus, duration, gracefulStop: '10s' } };
}

export const TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'];

/** A metric's values, preferring the scenario-scoped submetric (excludes setup() requests). */
export function metricValues(data, name, scenario) {
  const scoped = data.metrics[`${name}{scenario:${scenario}}`];
  const plain = data.metrics[name];
  return (scoped || plain || {}).values || {};
}

const BOOKKEEPING = new Set(['count>=0', 'max>=0']);

function fmtMs(v) {
  if (v === undefined || v === null) return 'n/a';
  return v >= 1000 ? `${(v / 1000).toFixed(2)}s` : `${v.toFixed(2)}ms`;
}

function fmtNum(v, digits) {
  if (v === undefined || v === null) return 'n/a';
  return Number(v).toFixed(digits);
}

/**
 * Every threshold of the run as `{metric, expression, ok}`, without the always-true bookkeeping
 * thresholds (`count>=0`, `max>=0`) that only make k6 compute a scenario's submetric.
 */
function thresholdResults(data) {
  const out = [];
  for (const [metric, m] of Object.entries(data.metrics)) {
    for (const [expression, t] of Object.entries(m.thresholds || {})) {
      if (BOOKKEEPING.has(expression.replace(/\s/g, ''))) continue;
      out.push({ metric, expression, ok: t.ok });
    }
  }
  return out;
}

/**
 * Builds the handleSummary() result: a short text summary on stdout and, when SUMMARY_FILE is
 * set, a JSON document with our fields plus k6's own `metrics`, `state` and `options`.
 *
 * `info` holds the script's own fields (script, pathKind, config, setup data, counters).
 * `lines` are extra text lines for stdout.
 */
export function buildSummary(data, scenario, info, lines) {
  const dur = metricValues(data, 'http_req_duration', scenario);
  const reqs = metricValues(data, 'http_reqs', scenario);
  const failed = metricValues(data, 'http_req_failed', scenario);
  const runSeconds = data.state.testRunDurationMs / 1000;
  const thresholds = thresholdResults(data);
  const allOk = thresholds.every((t) => t.ok);

  const text = [
    '',
    `firstcome k6 ${info.script}${info.script === 'flash-sale' ? ` (${info.pathKind} path)` : ''}`,
    `  run time ............ ${fmtNum(runSeconds, 1)}s, ${info.config.vus} VUs for ${info.config.duration}`,
    `  requests ............ ${reqs.count || 0} (${fmtNum((reqs.count || 0) / runSeconds, 1)}/s)`,
    `  latency ............. avg ${fmtMs(dur.avg)}  p50 ${fmtMs(dur.med)}  p95 ${fmtMs(dur['p(95)'])}  p99 ${fmtMs(dur['p(99)'])}  max ${fmtMs(dur.max)}`,
    `  unexpected status ... ${fmtNum(100 * (failed.rate || 0), 3)}% (${failed.passes || 0} requests)`,
    ...(lines || []).map((l) => `  ${l}`),
    `  thresholds .......... ${allOk ? 'all passed' : 'SOME FAILED'}`,
    ...thresholds.map((t) => `    ${t.ok ? 'ok  ' : 'FAIL'} ${t.metric}: ${t.expression}`),
    '',
  ].join('\n');

  const doc = Object.assign({}, info, {
    generatedAt: new Date().toISOString(),
    scenario,
    runSeconds,
    thresholds,
    thresholdsOk: allOk,
    metrics: data.metrics,
    state: data.state,
  });

  const result = { stdout: text };
  const file = env('SUMMARY_FILE', '');
  if (file) result[file] = JSON.stringify(doc, null, 2);
  return result;
}
