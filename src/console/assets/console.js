// firstcome live sale console: the campaign list, one campaign's live stream (Server-Sent
// Events, one `snapshot` a second) drawn as figures, a stock bar and a 5-minute chart, and the
// admin controls. Plain ES2020, no dependency. Server data is only ever set with textContent.
// The stream is read with fetch, not EventSource: only fetch sends the admin token (in the
// Authorization header; a token in the URL would land in logs), which adds the operational
// figures (relay and consumer lag, dead events) to the snapshots.
'use strict';

(() => {
  const WINDOW_MS = 5 * 60 * 1000;
  const SLOT_MS = 5000; // the server's series: one slot per 5 s
  const STALE_MS = 5000;
  const RECONNECT_MS = 2000; // after a stream that ended (EventSource waits about as long)
  const RETRY_MS = 5000; // after a refusal without a Retry-After
  const TOKEN_KEY = 'firstcome.console.adminToken';

  const $ = (id) => document.getElementById(id);
  const fmt = new Intl.NumberFormat(undefined);
  const fmtRate = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

  const view = {
    id: null, // the campaign watched
    name: '',
    source: null, // its stream: {controller (an AbortController), admin (sent with the token)}
    retry: null, // a timer to open a new stream after the old one ended or was refused
    series: [], // the last snapshot's slots: {at, wins, refused}
    seriesAt: NaN, // that snapshot's time (ms)
    lastAt: 0, // Date.now() of the last snapshot
    status: 'idle',
  };

  // ---- small helpers ----------------------------------------------------------------------

  // A duration in seconds as "2 min 5 s" or "40 s".
  function fmtDuration(seconds) {
    const m = Math.floor(seconds / 60);
    return m > 0 ? `${m} min ${seconds % 60} s` : `${seconds} s`;
  }

  function setNumber(id, value, text) {
    const el = $(id);
    const known = value !== null && value !== undefined && Number.isFinite(Number(value));
    el.dataset.value = known ? String(value) : '';
    el.textContent = known ? (text !== undefined ? text : fmt.format(value)) : '—';
  }

  function setConnection(state, text) {
    view.status = state;
    const el = $('connection');
    el.dataset.state = state;
    if (el.textContent !== text) el.textContent = text;
  }

  function uuid() {
    if (window.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    // Plain-HTTP pages on another host than localhost have no randomUUID: a v4 UUID by hand.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  async function readJson(response) {
    const text = await response.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch (_) {
      return { message: text.slice(0, 200) };
    }
  }

  function hashCampaign() {
    const m = /(?:^#|&)campaign=(\d+)/.exec(location.hash);
    return m ? Number(m[1]) : null;
  }

  // ---- user identity ----------------------------------------------------------------------

  // /health/ready says whether user calls are checked (`identity.userAuth`) and whether other
  // hosts can make them (`identity.exposed`). With `none` any caller acts for any userId: the
  // operator must see it (docs/design.md §17). A 503 (not ready) carries the same body.
  async function loadIdentity() {
    const el = $('identity');
    try {
      const response = await fetch('/health/ready', { headers: { Accept: 'application/json' } });
      const identity = ((await readJson(response)) || {}).identity;
      if (!identity) return;
      const off = identity.userAuth === 'none';
      el.dataset.exposed = String(identity.exposed === true);
      el.textContent = !off
        ? ''
        : identity.exposed
          ? 'User identity off: USER_AUTH=none on an address other hosts reach; any caller can act for any userId'
          : 'User identity off (USER_AUTH=none, this host only)';
      el.title = off ? 'Only safe behind a gateway that authenticates users and sets the userId itself.' : '';
      el.hidden = !off;
    } catch (_) {
      // The service is not answering: the live view says so; the badge stays as it was.
    }
  }

  // ---- campaign list ----------------------------------------------------------------------

  // The list refreshes itself while the page is in view, so a campaign created elsewhere (a
  // drop's script, another admin) shows up without a reload; quietly, without "Loading…".
  const LIST_EVERY_MS = 10000;

  async function loadCampaigns(quiet) {
    const message = $('campaigns-message');
    if (quiet !== true) message.textContent = 'Loading campaigns…';
    try {
      const response = await fetch('/api/v1/campaigns?limit=100', { headers: { Accept: 'application/json' } });
      const body = await readJson(response);
      if (!response.ok) {
        message.textContent = `Could not list the campaigns: ${(body && body.code) || response.status} ${(body && body.message) || ''}`;
        return;
      }
      renderCampaigns((body && body.items) || []);
      message.textContent = body.items.length ? `${body.items.length} campaign(s)${body.nextCursor ? ' (first 100)' : ''}.` : 'No campaigns yet.';
    } catch (err) {
      message.textContent = `Could not list the campaigns: ${err.message}`;
    }
  }

  function renderCampaigns(items) {
    const list = $('campaigns');
    // Rebuilt only when something it shows changed: a refresh leaves a focused button (and
    // a screen reader's place) alone otherwise.
    const shown = JSON.stringify(items.map((c) => [c.id, c.name, c.state, c.remainingStock, c.totalStock]));
    if (list.dataset.shown === shown) return;
    list.dataset.shown = shown;
    const rows = items.map((c) => {
      const li = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.dataset.campaignId = String(c.id);
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = c.name;
      const meta = document.createElement('span');
      meta.className = 'meta';
      meta.textContent = `#${c.id} · ${c.state} · ${fmt.format(c.remainingStock)}/${fmt.format(c.totalStock)} left`;
      button.append(name, meta);
      button.addEventListener('click', () => {
        if (hashCampaign() === c.id) openCampaign(c.id, true);
        else location.hash = `campaign=${c.id}`;
        $('live').focus({ preventScroll: false });
      });
      li.append(button);
      return li;
    });
    list.replaceChildren(...rows);
    markCurrent();
  }

  function markCurrent() {
    for (const b of $('campaigns').querySelectorAll('button')) {
      b.setAttribute('aria-current', String(Number(b.dataset.campaignId) === view.id));
    }
  }

  // ---- live view --------------------------------------------------------------------------

  function openCampaign(id, force) {
    if (id === view.id && !force) return;
    closeStream();
    view.id = id;
    view.name = '';
    view.series = [];
    view.seriesAt = NaN;
    view.lastAt = 0;
    $('live').hidden = false;
    $('campaign-name').textContent = `Campaign ${id}`;
    $('campaign-id').textContent = `#${id}`;
    resetFigures();
    $('answer').textContent = '';
    $('answer').dataset.kind = '';
    markCurrent();
    drawChart();
    openStream();
  }

  function closeStream() {
    if (view.source) view.source.controller.abort();
    view.source = null;
    clearTimeout(view.retry);
    view.retry = null;
  }

  // Opens the campaign's stream, with the admin token when one is set.
  function openStream() {
    const id = view.id;
    const token = getToken();
    const stream = { controller: new AbortController(), admin: Boolean(token) };
    view.source = stream;
    setConnection('connecting', 'Connecting…');
    const headers = { Accept: 'text/event-stream' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const current = () => view.source === stream;
    (async () => {
      let response;
      try {
        response = await fetch(`/api/v1/campaigns/${id}/live`, {
          headers, cache: 'no-store', signal: stream.controller.signal,
        });
      } catch (_) {
        if (current()) retryLater(id, 'Service unreachable', RETRY_MS);
        return;
      }
      if (!response.ok) {
        if (current()) refused(id, stream, response);
        return;
      }
      try {
        await readEvents(response.body, (type, data) => {
          if (current() && type === 'snapshot') onSnapshot(id, data);
        });
      } catch (_) {
        // Cut, or aborted by closeStream.
      }
      if (current()) retryLater(id, 'Disconnected', RECONNECT_MS);
    })();
  }

  // Calls onEvent(type, data) for each Server-Sent Event of body; comments (keep-alives) are
  // skipped. Resolves when the stream ends.
  async function readEvents(body, onEvent) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let pending = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      pending += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
      let end = pending.indexOf('\n\n');
      while (end >= 0) {
        const block = pending.slice(0, end);
        pending = pending.slice(end + 2);
        end = pending.indexOf('\n\n');
        let type = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (!line || line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? '' : line.slice(colon + 1);
          if (text.startsWith(' ')) text = text.slice(1);
          if (field === 'event') type = text;
          else if (field === 'data') data.push(text);
        }
        if (data.length) onEvent(type, data.join('\n'));
      }
    }
  }

  function onSnapshot(id, data) {
    let snapshot;
    try {
      snapshot = JSON.parse(data);
    } catch (_) {
      return;
    }
    if (snapshot.campaignId !== undefined && Number(snapshot.campaignId) !== id) return;
    view.lastAt = Date.now();
    setConnection('live', 'Live');
    render(snapshot);
  }

  // The stream was answered with an error instead: say why, and try again when it may help.
  async function refused(id, stream, response) {
    const body = await readJson(response).catch(() => null);
    if (view.source !== stream) return;
    view.source = null;
    const code = (body && body.code) || `HTTP ${response.status}`;
    if (response.status === 404) {
      setConnection('closed', `Campaign ${id} not found`);
      return;
    }
    if (response.status === 401 && stream.admin) {
      // A wrong token: forgotten, and the public view instead.
      setToken(null);
      answer('error', `${code}: the admin token was refused, and forgotten. The live view shows the public figures; enter the right token for the rest.`);
      openStream();
      return;
    }
    const seconds = Number(response.headers.get('Retry-After'));
    const wait = Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : RETRY_MS;
    retryLater(id, `Refused (${code})`, wait);
  }

  function retryLater(id, why, ms) {
    if (view.id !== id) return;
    view.source = null;
    setConnection('closed', `${why}; retrying in ${Math.round(ms / 1000)} s`);
    clearTimeout(view.retry);
    view.retry = setTimeout(() => {
      if (view.id === id && !view.source) openStream();
    }, ms);
  }

  // A new token, or none: the stream again, so that it shows what this token may see.
  function reopenStream() {
    if (view.id === null) return;
    closeStream();
    openStream();
  }

  function resetFigures() {
    for (const id of ['accepted', 'outcomes', 'refused', 'usage', 'wins-rate', 'refused-rate', 'holds-expiring', 'next-expiry',
      'queue-length', 'queue-admitted', 'waitlist-length', 'waitlist-offers', 'relay-lag', 'consumer-lag', 'dead-events',
      'confirmed-stock', 'held-stock', 'free-stock', 'total-stock']) {
      setNumber(id, null);
    }
    for (const el of document.querySelectorAll('.figures .operations')) el.hidden = true;
    $('state').textContent = '—';
    $('state').dataset.state = '';
    $('snapshot-at').textContent = '—';
    $('stock-text').textContent = 'No data yet.';
    $('reasons').replaceChildren();
    $('reasons-empty').hidden = false;
    for (const seg of ['bar-confirmed', 'bar-held', 'bar-free']) $(seg).style.width = '0%';
    renderBuckets(null);
    renderGroup(null);
  }

  // A bucketed campaign's balance (admin streams only): the pool, and a square per bucket.
  function renderBuckets(b) {
    $('buckets-panel').hidden = !b;
    if (!b) {
      $('buckets-grid').replaceChildren();
      return;
    }
    const items = b.items || [];
    const most = Math.max(1, ...items.map((x) => Number(x.remainingStock) || 0));
    const dry = (x) => x.gateStock !== null && x.gateStock !== undefined && Number(x.gateStock) <= 0;
    $('buckets-summary').textContent = `${fmt.format(items.length)} buckets · pool ${fmt.format(b.pool)} · ` +
      `${fmt.format(items.filter(dry).length)} dry at the gate · transfers owed ${fmt.format(b.transfersOwed)}`;
    $('buckets-grid').replaceChildren(...items.map((x) => {
      const cell = document.createElement('div');
      cell.className = 'bucket';
      cell.setAttribute('role', 'listitem');
      const gate = x.gateStock === null || x.gateStock === undefined ? 'not loaded' : fmt.format(x.gateStock);
      cell.title = `Bucket ${x.bucket}: ${fmt.format(x.remainingStock)} in its row, ${gate} free at its gate, ` +
        `${fmt.format(x.acceptedCount)} wins`;
      cell.setAttribute('aria-label', cell.title);
      cell.dataset.bucket = String(x.bucket);
      cell.dataset.dry = String(dry(x));
      cell.style.setProperty('--fill', String(Math.min(1, (Number(x.remainingStock) || 0) / most)));
      return cell;
    }));
  }

  // A grouped campaign's group (a drop): its campaigns side by side, the watched one marked; a
  // campaign's name opens it.
  function renderGroup(g) {
    $('group-panel').hidden = !g;
    if (!g) {
      $('group-campaigns').replaceChildren();
      return;
    }
    $('group-summary').textContent = `${g.name} · group ${g.groupId} · at most ${fmt.format(g.perUserLimit)} ` +
      `unit(s) per user across its ${fmt.format(g.campaigns.length)} campaigns`;
    $('group-summary').dataset.value = String(g.perUserLimit);
    const cell = (value, text) => {
      const td = document.createElement('td');
      td.className = 'num';
      td.dataset.value = value === null || value === undefined ? '' : String(value);
      td.textContent = text !== undefined ? text : value === null || value === undefined ? '—' : fmt.format(value);
      return td;
    };
    $('group-campaigns').replaceChildren(...g.campaigns.map((c) => {
      const tr = document.createElement('tr');
      tr.dataset.campaignId = String(c.campaignId);
      if (c.campaignId === view.id) tr.setAttribute('aria-current', 'true');
      const th = document.createElement('th');
      th.scope = 'row';
      const link = document.createElement('a');
      link.href = `#campaign=${c.campaignId}`;
      link.textContent = `${c.name} (#${c.campaignId})`;
      th.append(link);
      const state = document.createElement('td');
      state.textContent = String(c.state).replace('_', ' ');
      const room = c.queueLength !== null && c.queueLength !== undefined;
      tr.append(th, state,
        cell(c.freeStock, `${fmt.format(c.freeStock)} / ${fmt.format(c.totalStock)}`),
        cell(c.acceptedCount),
        cell(c.queueLength),
        cell(c.waitlisted),
        cell(room ? c.offersOpen : null,
          room ? `${fmt.format(c.offersOpen)} · ${fmt.format(c.offersTaken)} · ${fmt.format(c.offersPassed)}` : undefined));
      return tr;
    }));
  }

  function sum(obj) {
    return Object.values(obj || {}).reduce((a, b) => a + (Number(b) || 0), 0);
  }

  function render(s) {
    if (s.name && s.name !== view.name) {
      view.name = s.name;
      $('campaign-name').textContent = s.name;
    }
    const state = s.paused && s.state === 'OPEN' ? 'PAUSED' : s.state;
    const item = $('campaigns').querySelector(`button[data-campaign-id="${view.id}"] .meta`);
    if (item) item.textContent = `#${view.id} · ${state} · ${fmt.format(s.freeStock)}/${fmt.format(s.totalStock)} left`;
    $('state').textContent = String(state || '—').replace('_', ' ');
    $('state').dataset.state = state || '';
    const at = Date.parse(s.at);
    const when = $('snapshot-at');
    when.dateTime = s.at || '';
    when.textContent = Number.isFinite(at) ? new Date(at).toLocaleTimeString() : '—';

    // Stock.
    const total = Number(s.totalStock) || 0;
    const pct = (n) => (total > 0 ? Math.max(0, Math.min(100, (100 * n) / total)) : 0);
    $('bar-confirmed').style.width = `${pct(s.confirmedStock)}%`;
    $('bar-held').style.width = `${pct(s.heldStock)}%`;
    $('bar-free').style.width = `${pct(s.freeStock)}%`;
    setNumber('confirmed-stock', s.confirmedStock);
    setNumber('held-stock', s.heldStock);
    setNumber('free-stock', s.freeStock);
    setNumber('total-stock', s.totalStock);
    $('stock-text').textContent = `${fmt.format(s.confirmedStock)} confirmed, ${fmt.format(s.heldStock)} held, ` +
      `${fmt.format(s.freeStock)} free, of ${fmt.format(total)} units.`;

    // Figures.
    const refusedRate = sum(s.refusedPerSecond);
    setNumber('accepted', s.acceptedCount);
    setNumber('refused', s.refusedCount);
    setNumber('usage', s.stockUsageRate, `${(100 * Number(s.stockUsageRate)).toFixed(1)} %`);
    setNumber('wins-rate', s.winsPerSecond, fmtRate.format(s.winsPerSecond));
    setNumber('refused-rate', refusedRate, fmtRate.format(refusedRate));
    setNumber('holds-expiring', s.holdsExpiringSoon);
    // When the first hold runs out, as the seconds from this snapshot (data-value) and a clock
    // time: "Holds expiring within 60 s" says 0 while ten holds run out in eight minutes.
    const nextAt = s.nextHoldExpiresAt ? Date.parse(s.nextHoldExpiresAt) : NaN;
    const nextIn = Math.max(0, Math.round((nextAt - Date.parse(s.at)) / 1000));
    setNumber('next-expiry', Number.isFinite(nextAt) ? nextIn : null,
      `${new Date(nextAt).toLocaleTimeString()} (in ${fmtDuration(nextIn)})`);
    // What became of the wins (the stats consumer's figures), each win once: the service counts
    // a refund as confirmed, as cancelled and as refunded, so a refund is taken out of the first
    // two here, and the four with the holds still running add up to the wins. The confirmed
    // (and kept) count is the element's value, the four are its text.
    const refunded = s.winsRefunded || 0;
    const kept = Math.max(0, s.winsConfirmed - refunded);
    const cancelled = Math.max(0, s.winsCancelled - refunded);
    setNumber('outcomes', kept,
      `${fmt.format(kept)} · ${fmt.format(cancelled)} · ${fmt.format(s.winsExpired)} · ` +
      `${fmt.format(refunded)}`);
    const queue = s.queue || null;
    $('queue-figures').hidden = !queue;
    $('queue-rate-figures').hidden = !queue;
    setNumber('queue-length', queue ? queue.length : null);
    setNumber('queue-admitted', queue ? queue.admittedPerSecond : null,
      queue ? fmtRate.format(queue.admittedPerSecond) : undefined);
    // The waitlist (a campaign with offerSeconds): shown once anyone is on it or was offered.
    const q = queue || {};
    const waitlist = Boolean(queue) && (q.waitlisted + q.offersOpen + q.offersTaken + q.offersPassed) > 0;
    $('waitlist-figures').hidden = !waitlist;
    $('offers-figures').hidden = !waitlist;
    setNumber('waitlist-length', waitlist ? q.waitlisted : null);
    setNumber('waitlist-offers', waitlist ? q.offersOpen : null,
      waitlist ? `${fmt.format(q.offersOpen)} · ${fmt.format(q.offersTaken)} · ${fmt.format(q.offersPassed)}` : undefined);
    // The service's own figures come with an admin token only.
    const ops = s.operations || null;
    for (const el of document.querySelectorAll('.figures .operations')) el.hidden = !ops;
    $('operations-note').hidden = Boolean(ops);
    const o = ops || {};
    setNumber('relay-lag', o.relayLagMs, `${fmt.format(o.relayLagMs)} ms`);
    const consumer = [];
    if (o.consumerLagMs !== null && o.consumerLagMs !== undefined) consumer.push(`${fmt.format(o.consumerLagMs)} ms`);
    if (o.consumerLagEvents !== null && o.consumerLagEvents !== undefined) consumer.push(`${fmt.format(o.consumerLagEvents)} events`);
    setNumber('consumer-lag', o.consumerLagMs !== null && o.consumerLagMs !== undefined ? o.consumerLagMs : o.consumerLagEvents,
      consumer.join(' · '));
    setNumber('dead-events', o.deadEvents);
    $('dead-events').dataset.alert = String(Number(o.deadEvents) > 0);
    renderBuckets(o.buckets || null);
    renderGroup(s.group || null);

    renderReasons(s.refusedByReason || {}, s.refusedPerSecond || {});

    // Chart: the server's last five minutes, whenever this page was opened.
    view.series = Array.isArray(s.series) ? s.series : [];
    view.seriesAt = Number.isFinite(at) ? at : Date.now();
    drawChart();
  }

  function renderReasons(totals, rates) {
    const codes = Array.from(new Set([...Object.keys(totals), ...Object.keys(rates)]));
    codes.sort((a, b) => (Number(totals[b]) || 0) - (Number(totals[a]) || 0) || a.localeCompare(b));
    const rows = codes.map((code) => {
      const tr = document.createElement('tr');
      tr.dataset.code = code;
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = code;
      const count = document.createElement('td');
      count.className = 'num';
      count.dataset.value = String(Number(totals[code]) || 0);
      count.textContent = fmt.format(Number(totals[code]) || 0);
      const rate = document.createElement('td');
      rate.className = 'num';
      rate.textContent = fmtRate.format(Number(rates[code]) || 0);
      tr.append(th, count, rate);
      return tr;
    });
    $('reasons').replaceChildren(...rows);
    $('reasons-empty').hidden = rows.length > 0;
  }

  // ---- chart ------------------------------------------------------------------------------

  // The top of the y axis: 4 gridline steps of 1, 2 or 5 times a power of ten (at least 1).
  function axisMax(v) {
    const raw = Math.max(1, v / 4);
    const p = 10 ** Math.floor(Math.log10(raw));
    const m = [1, 2, 5, 10].find((k) => k * p >= raw);
    return 4 * m * p;
  }

  // The server's slots as rates per second, one point at the end of each 5-second slot of the
  // last five minutes: a slot's count over its 5 s, the one under way's over the time it has
  // run; an absent slot had nothing.
  function chartPoints() {
    const at = view.seriesAt;
    if (!Number.isFinite(at)) return [];
    const bySlot = new Map(view.series.map((p) => [Date.parse(p.at), p]));
    const points = [];
    for (let t = Math.floor((at - WINDOW_MS) / SLOT_MS) * SLOT_MS; t <= at; t += SLOT_MS) {
      const p = bySlot.get(t);
      const secs = Math.max(1, Math.min(SLOT_MS, at - t) / 1000);
      points.push({
        t: Math.min(t + SLOT_MS, at),
        wins: p ? (Number(p.wins) || 0) / secs : 0,
        refused: p ? (Number(p.refused) || 0) / secs : 0,
      });
    }
    return points;
  }

  function drawChart() {
    const canvas = $('chart');
    const box = $('chart-box');
    const w = box.clientWidth;
    const h = box.clientHeight;
    if (!w || !h) return;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    const color = (name) => css.getPropertyValue(name).trim();
    const font = getComputedStyle(document.body).fontFamily;

    const pad = { left: 52, right: 12, top: 16, bottom: 40 };
    const pw = w - pad.left - pad.right;
    const ph = h - pad.top - pad.bottom;
    const shown = chartPoints();
    const end = Number.isFinite(view.seriesAt) ? view.seriesAt : Date.now();
    const span = WINDOW_MS;
    const start = end - span;
    const max = axisMax(shown.reduce((m, p) => Math.max(m, p.wins, p.refused), 0));
    const x = (t) => pad.left + ((t - start) / span) * pw;
    const y = (v) => pad.top + ph - (v / max) * ph;

    // Grid, y ticks and label.
    ctx.font = `12px ${font}`;
    ctx.lineWidth = 1;
    ctx.strokeStyle = color('--line');
    ctx.fillStyle = color('--muted');
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= 4; i += 1) {
      const v = (max * i) / 4;
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(pad.left, yy);
      ctx.lineTo(pad.left + pw, yy);
      ctx.stroke();
      ctx.fillText(fmtRate.format(v), pad.left - 6, yy);
    }
    ctx.textAlign = 'left';
    ctx.textBaseline = 'top';
    ctx.fillText('per second', 4, 0);

    // x ticks (at most one per 55 px) and the label.
    ctx.textAlign = 'center';
    const most = Math.max(2, Math.floor(pw / 55));
    const step = [10000, 15000, 30000, 60000, 120000, 300000].find((st) => span / st <= most) || span;
    for (let ago = 0; ago <= span + 1; ago += step) {
      const xx = Math.round(x(end - ago)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(xx, pad.top + ph);
      ctx.lineTo(xx, pad.top + ph + 4);
      ctx.stroke();
      const label = ago === 0 ? 'now' : ago % 60000 === 0 ? `−${ago / 60000} min` : `−${ago / 1000} s`;
      ctx.fillText(label, Math.min(Math.max(xx, pad.left + 16), w - 16), pad.top + ph + 6);
    }
    ctx.fillText('time before now (5-second slots)', pad.left + pw / 2, pad.top + ph + 22);

    // The two lines.
    const line = (key, stroke, dash) => {
      ctx.save();
      ctx.beginPath();
      ctx.rect(pad.left, pad.top - 2, pw, ph + 4);
      ctx.clip();
      ctx.strokeStyle = stroke;
      ctx.lineWidth = 2;
      ctx.lineJoin = 'round';
      ctx.setLineDash(dash);
      ctx.beginPath();
      shown.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p[key])) : ctx.moveTo(x(p.t), y(p[key]))));
      ctx.stroke();
      if (shown.length === 1) {
        ctx.fillStyle = stroke;
        ctx.fillRect(x(shown[0].t) - 2, y(shown[0][key]) - 2, 4, 4);
      }
      ctx.restore();
    };
    line('refused', color('--refused'), [6, 4]);
    line('wins', color('--wins'), []);

    // The text alternative.
    const lastPoint = shown[shown.length - 1];
    $('chart-summary').textContent = lastPoint
      ? `Now ${fmtRate.format(lastPoint.wins)} wins and ${fmtRate.format(lastPoint.refused)} refusals per second; ` +
        `peaks over the last 5 minutes: ${fmtRate.format(Math.max(...shown.map((p) => p.wins)))} wins, ` +
        `${fmtRate.format(Math.max(...shown.map((p) => p.refused)))} refusals per second.`
      : 'No data yet.';
  }

  // ---- admin token and controls -----------------------------------------------------------

  let memoryToken = null; // when sessionStorage is unavailable
  function getToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (_) {
      return memoryToken;
    }
  }
  function setToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) {
      memoryToken = token;
    }
    showControls();
  }

  function showControls() {
    const has = Boolean(getToken());
    $('controls').hidden = !has;
    $('token-forget').hidden = !has;
    $('token-status').textContent = has
      ? 'A token is set for this tab (sessionStorage). Controls act on the campaign shown; the live view shows the operational figures.'
      : 'Enter an admin token to use the controls and see the operational figures. It is kept in this tab only (sessionStorage).';
  }

  function answer(kind, text) {
    const el = $('answer');
    el.dataset.kind = kind;
    el.textContent = text;
  }

  const botCheckButtons = { 'bot-check-on': true, 'bot-check-off': false, 'bot-check-default': null };
  const controlButtons = ['add-stock-btn', 'withdraw-stock-btn', 'pause', 'resume', 'close', 'redrive',
    ...Object.keys(botCheckButtons)];
  function busy(on) {
    for (const id of controlButtons) $(id).disabled = on;
  }

  async function adminPost(path, body) {
    const headers = {
      Accept: 'application/json',
      Authorization: `Bearer ${getToken()}`,
      'Idempotency-Key': uuid(),
    };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(path, {
      method: 'POST',
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { response, body: await readJson(response) };
  }

  function errorText(status, body) {
    const code = (body && body.code) || `HTTP ${status}`;
    let text = `${code}: ${(body && body.message) || 'the request failed'}`;
    if (!/[.!?]$/.test(text)) text += '.';
    if (body && body.freeStock !== undefined) text += ` Free stock: ${fmt.format(body.freeStock)}.`;
    if (status === 401 || status === 403) text += ' Check the admin token.';
    return text;
  }

  async function runControl(action) {
    if (!getToken()) {
      answer('error', 'Enter the admin token first.');
      return;
    }
    busy(true);
    answer('busy', `${action.doing}…`);
    try {
      const { response, body } = await adminPost(action.path, action.body);
      if (response.ok) {
        answer('ok', action.done(body || {}));
        loadCampaigns();
      } else {
        answer('error', errorText(response.status, body));
      }
    } catch (err) {
      answer('error', `The request did not reach the service: ${err.message}`);
    } finally {
      busy(false);
    }
  }

  const campaignLabel = () => (view.name ? `“${view.name}” (#${view.id})` : `#${view.id}`);
  const stockAfter = (c) => `stock ${fmt.format(c.totalStock)}, ${fmt.format(c.remainingStock)} unsold`;

  const actions = {
    pause: () => ({
      question: `Pause campaign ${campaignLabel()}? Joins will be refused until it is resumed.`,
      confirm: 'Confirm pause', doing: 'Pausing',
      path: `/api/v1/admin/campaigns/${view.id}/pause`,
      done: (c) => `Paused. The campaign is ${c.state || 'PAUSED'}.`,
    }),
    resume: () => ({
      question: `Resume campaign ${campaignLabel()}?`,
      confirm: 'Confirm resume', doing: 'Resuming',
      path: `/api/v1/admin/campaigns/${view.id}/resume`,
      done: (c) => `Resumed. The campaign is ${c.state || 'OPEN'}.`,
    }),
    close: () => ({
      question: `Close campaign ${campaignLabel()} for good? This cannot be undone.`,
      confirm: 'Confirm close', doing: 'Closing',
      path: `/api/v1/admin/campaigns/${view.id}/close`,
      done: (c) => `Closed. The campaign is ${c.state || 'ENDED'}.`,
    }),
    redrive: () => ({
      question: `Send the dead events of campaign ${campaignLabel()} back to the relay?`,
      confirm: 'Confirm redrive', doing: 'Redriving',
      path: `/api/v1/admin/outbox/redrive?campaignId=${view.id}`,
      done: (r) => `Redriven: ${fmt.format(Number(r.redriven) || 0)} dead event(s) back to pending.`,
    }),
    // Whether the campaign's door (its queue, or an OPEN campaign's joins) asks for the bot check;
    // null: the service's BOT_CHECK decides. Not a sale control: no event, no audit row.
    botCheck: (required) => ({
      question: required === null
        ? `Let campaign ${campaignLabel()} follow the service's bot check setting (BOT_CHECK)?`
        : required
          ? `Ask for the bot check at campaign ${campaignLabel()}'s door? Tickets given before it win nothing.`
          : `Stop asking for the bot check at campaign ${campaignLabel()}'s door?`,
      confirm: required === null ? 'Confirm the default' : required ? 'Confirm asking' : 'Confirm not asking',
      doing: 'Switching the bot check',
      path: `/api/v1/admin/campaigns/${view.id}/bot-check`,
      body: { required },
      done: (c) => (c.botCheck === undefined
        ? "Bot check: the service's default (BOT_CHECK) decides."
        : c.botCheck
          ? 'Bot check on: the campaign asks for it, on every instance within a second.'
          : 'Bot check off: the campaign does not ask for it.'),
    }),
    stock: (delta) => ({
      question: delta > 0
        ? `Add ${fmt.format(delta)} units to campaign ${campaignLabel()}?`
        : `Withdraw ${fmt.format(-delta)} unsold units from campaign ${campaignLabel()}?`,
      confirm: delta > 0 ? `Confirm adding ${fmt.format(delta)}` : `Confirm withdrawing ${fmt.format(-delta)}`,
      doing: delta > 0 ? 'Adding stock' : 'Withdrawing stock',
      path: `/api/v1/admin/campaigns/${view.id}/stock`,
      body: { delta },
      done: (c) => `${delta > 0 ? 'Added' : 'Withdrew'} ${fmt.format(Math.abs(delta))}: ${stockAfter(c)}.`,
    }),
  };

  // The in-page confirmation: a modal <dialog> whose Cancel has the focus first.
  let pending = null;
  function ask(action, opener) {
    if (view.id === null) return;
    pending = { action, opener };
    $('confirm-text').textContent = action.question;
    $('confirm-yes').textContent = action.confirm;
    $('confirm-dialog').showModal();
    $('confirm-no').focus();
  }
  function settle(go) {
    const p = pending;
    pending = null;
    const dialog = $('confirm-dialog');
    if (dialog.open) dialog.close();
    if (!p) return;
    if (p.opener) p.opener.focus();
    if (go) runControl(p.action);
  }

  function readAmount(inputId) {
    const input = $(inputId);
    const n = Number(input.value);
    if (!input.value || !Number.isInteger(n) || n < 1) {
      answer('error', 'Enter a whole number of units, 1 or more.');
      input.focus();
      return null;
    }
    return n;
  }

  // ---- wiring -----------------------------------------------------------------------------

  function start() {
    $('campaigns-refresh').addEventListener('click', () => loadCampaigns());
    window.addEventListener('hashchange', () => {
      const id = hashCampaign();
      if (id !== null) openCampaign(id, false);
    });

    $('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const input = $('admin-token');
      const token = input.value.trim();
      if (!token) {
        answer('error', 'The admin token is empty.');
        input.focus();
        return;
      }
      input.value = '';
      setToken(token);
      answer('ok', 'Token set for this tab.');
      reopenStream();
    });
    $('token-forget').addEventListener('click', () => {
      setToken(null);
      answer('ok', 'Token forgotten.');
      $('admin-token').focus();
      reopenStream();
    });

    $('add-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const n = readAmount('add-stock');
      if (n !== null) ask(actions.stock(n), $('add-stock-btn'));
    });
    $('withdraw-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const n = readAmount('withdraw-stock');
      if (n !== null) ask(actions.stock(-n), $('withdraw-stock-btn'));
    });
    for (const [id, required] of Object.entries(botCheckButtons)) {
      $(id).addEventListener('click', (e) => ask(actions.botCheck(required), e.currentTarget));
    }
    for (const name of ['pause', 'resume', 'close', 'redrive']) {
      $(name).addEventListener('click', (e) => ask(actions[name](), e.currentTarget));
    }
    $('confirm-yes').addEventListener('click', () => settle(true));
    $('confirm-no').addEventListener('click', () => settle(false));
    $('confirm-dialog').addEventListener('cancel', (e) => {
      e.preventDefault(); // Escape: handled as Cancel, so the focus goes back
      settle(false);
    });

    // A stream that stays open but sends nothing is shown as such.
    setInterval(() => {
      if (view.status === 'live' && Date.now() - view.lastAt > STALE_MS) {
        setConnection('reconnecting', 'No update for 5 s…');
      }
    }, 1000);
    setInterval(() => {
      if (document.visibilityState === 'visible') loadCampaigns(true);
    }, LIST_EVERY_MS);
    if (window.ResizeObserver) new ResizeObserver(() => drawChart()).observe($('chart-box'));
    else window.addEventListener('resize', drawChart);

    showControls();
    loadIdentity();
    loadCampaigns();
    const id = hashCampaign();
    if (id !== null) openCampaign(id, false);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
