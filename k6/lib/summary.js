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

/**
 * The load shape every script uses, chosen by the environment:
 *
 * - closed model (default): `vus` looping VUs for `duration` (constant-vus). Each VU sends its
 *   next request when the previous one is answered, so a slower path is offered less load.
 * - open model (RATE set): RATE requests per second for `duration` (constant-arrival-rate),
 *   whatever the answers' latency, so both paths are offered the same load. Each request runs
 *   in a free VU of a pool of at most MAX_VUS (2000); a request that finds every VU waiting for
 *   an answer is not sent and counts in k6's `dropped_iterations`. PRE_VUS (default MAX_VUS) are
 *   allocated before the start: a VU costs ~0.2 MB and is quick to create, but creating them
 *   mid-run would take CPU from the run being measured.
 * - a fixed amount of work (ITERATIONS set): exactly ITERATIONS requests shared by `vus` VUs
 *   (shared-iterations), `duration` bounding them; scripts/bench-cpu-per-win.sh sends one join
 *   per unit, so every request wins.
 *
 * Returns `scenarios` (for options), `config` (for the summary) and `vuIds`: the largest `__VU`
 * a scenario iteration can see, so `__ITER * vuIds + __VU` never repeats.
 */
export function loadShape(name, vus, duration) {
  const rate = envNumber('RATE', 0, 0, 1000000);
  // ITERATIONS: exactly that many iterations shared by the VUS, then stop (DURATION bounds them).
  const iterations = envNumber('ITERATIONS', 0, 0, 100000000);
  if (iterations > 0) {
    if (rate > 0) throw new Error('RATE and ITERATIONS exclude each other');
    return {
      scenarios: {
        [name]: { executor: 'shared-iterations', vus, iterations, maxDuration: duration, gracefulStop: '10s' },
      },
      config: { model: 'closed', vus, iterations, maxDuration: duration },
      vuIds: vus,
    };
  }
  if (rate === 0) {
    return {
      scenarios: { [name]: { executor: 'constant-vus', vus, duration, gracefulStop: '10s' } },
      config: { model: 'closed', vus, duration },
      vuIds: vus,
    };
  }
  if (!Number.isInteger(rate)) throw new Error(`RATE=${rate}: expected a whole number of requests per second`);
  const maxVUs = envNumber('MAX_VUS', 2000, 1, 100000);
  const preAllocatedVUs = envNumber('PRE_VUS', maxVUs, 1, maxVUs);
  return {
    scenarios: {
      [name]: {
        executor: 'constant-arrival-rate',
        rate,
        timeUnit: '1s',
        duration,
        preAllocatedVUs,
        maxVUs,
        gracefulStop: '10s',
      },
    },
    config: { model: 'open', rate, duration, preAllocatedVUs, maxVUs },
    vuIds: maxVUs,
  };
}

/** The trend statistics every script asks k6 to compute (p(50) is `med`). */
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
  // k6 only creates dropped_iterations when an arrival-rate scenario drops one: absent means 0.
  const droppedIterations = (data.metrics.dropped_iterations || { values: {} }).values.count || 0;
  // `vus` is sampled about once a second; under an arrival-rate executor it counts the VUs busy
  // with a request, so its max says how close the pool came to MAX_VUS.
  const vusBusyMax = (data.metrics.vus || { values: {} }).values.max || null;
  const cfg = info.config;
  const load =
    cfg.model === 'open'
      ? `${cfg.rate} requests/s for ${cfg.duration} (VUs: at most ${cfg.maxVUs}, ` +
        `${vusBusyMax === null ? 'n/a' : vusBusyMax} busy at the peak sample)`
      : `${cfg.vus} VUs for ${cfg.duration}`;

  const text = [
    '',
    `firstcome k6 ${info.script}${info.script === 'flash-sale' ? ` (${info.pathKind} path)` : ''}`,
    `  run time ............ ${fmtNum(runSeconds, 1)}s, ${load}`,
    `  requests ............ ${reqs.count || 0} (${fmtNum((reqs.count || 0) / runSeconds, 1)}/s)`,
    ...(cfg.model === 'open' ? [`  dropped iterations .. ${droppedIterations} (no free VU: not sent)`] : []),
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
    droppedIterations,
    vusBusyMax,
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
