#!/usr/bin/env python3
"""The live sale console (/console) in a real browser, during a sale: headless Chromium through
Selenium, against a running service started with USER_AUTH=none.

  1. creates a campaign of 200 units (admin API);
  2. opens <base>/console#campaign=<id> and waits for its first live snapshot;
  3. runs a burst of 3,000 joins of distinct users, 200 virtual users at 300 joins a second (k6:
     the binary in $K6, else `k6` on PATH; without k6, Python threads), and takes the screenshot
     while it runs;
  4. waits until the page shows 200 accepted and, as refused, every join the burst saw refused;
     that figure must equal the campaign's refusedCount (GET /api/v1/campaigns/<id>), and the
     page's SOLD_OUT row the burst's SOLD_OUT answers;
  5. enters the admin token in the page, pauses through the page (with its confirm step): a new
     join answers 422 CAMPAIGN_PAUSED; resumes: a new join answers 409 SOLD_OUT (201 if stock
     was left); switches the bot check on (5b): a new join answers 403 BOT_CHECK_FAILED; and back
     to the service's default;
  6. saves a second screenshot (<screenshot>-controls.png); creates a campaign of 8 buckets,
     joins it, opens it: the buckets panel shows its 8 buckets (admin token in the page); a
     campaign with holds (6b), one of them refunded, each win shown once (6c); a campaign
     created after the page loaded appears in its list without a reload (6d); a group of two
     campaigns, one with a waiting room: the group panel shows both with the API's figures,
     marks the one watched, and opens the other;
  7. fails on any SEVERE entry of the browser's log.

Needs: chromium and chromium-driver (Debian), selenium; k6 optional. scripts/console-check.sh
installs them, starts the service and runs this.
Usage: console-check.py <base url> <admin token> <screenshot path>
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench_common import http
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

STOCK = 200
JOINS = 3000
VUS = 200
RATE = 300  # joins a second: the burst lasts about 10 s, so the chart moves on the screenshot
PAUSED_USER = 900_000_001  # users of the joins after the burst (the burst's are 1..JOINS)
LATER_JOINS = []  # the statuses of those joins

K6_SCRIPT = r"""
import http from 'k6/http';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';

const won = new Counter('joins_won');
const soldOut = new Counter('joins_sold_out');
const already = new Counter('joins_already');
const otherRefused = new Counter('joins_other_refused');
const failed = new Counter('joins_failed');

export const options = {
  scenarios: {
    burst: {
      executor: 'constant-arrival-rate', rate: __ENV.RATE * 1, timeUnit: '1s',
      duration: `${Math.ceil(__ENV.JOINS / __ENV.RATE)}s`, preAllocatedVUs: __ENV.VUS * 1,
      maxVUs: __ENV.VUS * 1, gracefulStop: '30s',
    },
  },
  summaryTrendStats: ['avg', 'p(95)', 'max'],
};

export default function () {
  const user = exec.scenario.iterationInTest + 1;
  if (user > __ENV.JOINS * 1) return;
  const res = http.post(`${__ENV.BASE}/api/v1/campaigns/${__ENV.CAMPAIGN}/participations`,
    JSON.stringify({ userId: user }), { headers: { 'Content-Type': 'application/json' },
    responseCallback: http.expectedStatuses(201, 409, 422, 429) });
  if (res.status === 201) { won.add(1); return; }
  let code = '';
  try { code = res.json('code'); } catch (_) { code = ''; }
  if (res.status === 409 && code === 'SOLD_OUT') soldOut.add(1);
  else if (res.status === 409 && code === 'ALREADY_PARTICIPATED') already.add(1);
  else if (res.status >= 400 && res.status < 500 && code) otherRefused.add(1);
  else failed.add(1);
}

export function handleSummary(data) {
  const count = (name) => (data.metrics[name] ? data.metrics[name].values.count : 0);
  const out = {
    won: count('joins_won'), soldOut: count('joins_sold_out'), already: count('joins_already'),
    otherRefused: count('joins_other_refused'), failed: count('joins_failed'),
    dropped: count('dropped_iterations'),
    p95Ms: data.metrics.http_req_duration ? data.metrics.http_req_duration.values['p(95)'] : null,
  };
  return { [__ENV.SUMMARY]: JSON.stringify(out), stdout: '' };
}
"""


def step(text):
    print(f"[console-check] {text}", flush=True)


def fail(text):
    print(f"[console-check] FAILED: {text}", file=sys.stderr, flush=True)
    sys.exit(1)


def refused_count(base, campaign):
    status, body = http("GET", f"{base}/api/v1/campaigns/{campaign}")
    if status != 200:
        fail(f"GET /api/v1/campaigns/{campaign} answered {status}: {body}")
    return body.get("refusedCount")


def poll(seconds, condition):
    """True once condition() is, within `seconds` (checked every 0.2 s); else False."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def join(base, campaign, user):
    return http("POST", f"{base}/api/v1/campaigns/{campaign}/participations", {"userId": user})


# ---- the burst ----------------------------------------------------------------------------


class Burst:
    """3,000 joins in the background, by k6 or by Python threads; result() waits for the counts
    {won, soldOut, already, otherRefused, failed, dropped}."""

    def __init__(self, base, campaign):
        self.base, self.campaign = base, campaign
        self.k6 = os.environ.get("K6") or shutil.which("k6")
        self.tmp = tempfile.mkdtemp(prefix="console-check-")
        self.summary = os.path.join(self.tmp, "summary.json")
        if self.k6:
            script = os.path.join(self.tmp, "burst.js")
            with open(script, "w") as f:
                f.write(K6_SCRIPT)
            env = dict(os.environ, BASE=base, CAMPAIGN=str(campaign), JOINS=str(JOINS), VUS=str(VUS),
                       RATE=str(RATE), SUMMARY=self.summary, K6_NO_USAGE_REPORT="true")
            step(f"burst: k6 ({self.k6}), {JOINS} joins of distinct users, {VUS} VUs at {RATE}/s")
            self.log = open(os.path.join(self.tmp, "k6.log"), "w")
            self.process = subprocess.Popen([self.k6, "run", "--quiet", "--no-color", script],
                                            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        else:
            step(f"burst: k6 not found, Python threads: {JOINS} joins of distinct users, "
                 f"{VUS} threads at {RATE}/s")
            self.counts = {"won": 0, "soldOut": 0, "already": 0, "otherRefused": 0, "failed": 0, "dropped": 0}
            self.lock = threading.Lock()
            self.thread = threading.Thread(target=self._threads, daemon=True)
            self.thread.start()

    def _one(self, user, at):
        delay = at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            status, body = join(self.base, self.campaign, user)
        except OSError:
            status, body = 0, None
        code = (body or {}).get("code", "")
        key = ("won" if status == 201 else "soldOut" if (status, code) == (409, "SOLD_OUT")
               else "already" if (status, code) == (409, "ALREADY_PARTICIPATED")
               else "otherRefused" if 400 <= status < 500 and code else "failed")
        with self.lock:
            self.counts[key] += 1

    def _threads(self):
        start = time.monotonic() + 0.1
        with ThreadPoolExecutor(max_workers=VUS) as pool:
            for i in range(JOINS):
                pool.submit(self._one, i + 1, start + i / RATE)

    def result(self, timeout=120):
        if self.k6:
            try:
                code = self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                fail(f"k6 did not finish within {timeout} s")
            self.log.close()
            if not os.path.exists(self.summary):
                fail(f"k6 exited {code} without a summary: {open(self.log.name).read()[-2000:]}")
            with open(self.summary) as f:
                counts = json.load(f)
        else:
            self.thread.join(timeout)
            if self.thread.is_alive():
                fail(f"the joins did not finish within {timeout} s")
            counts = dict(self.counts)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return counts


# ---- the page -----------------------------------------------------------------------------


def browser():
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return webdriver.Chrome(options=options, service=Service(driver_path))


def value(driver, element_id):
    """The raw number an element of the page carries in data-value (None when empty)."""
    raw = driver.find_element(By.ID, element_id).get_attribute("data-value")
    return None if raw in (None, "") else float(raw)


def wait_for(driver, seconds, what, condition):
    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.2).until(lambda d: condition(d))
    except TimeoutException:
        connection = driver.find_element(By.ID, "connection").text
        fail(f"{what}: not within {seconds} s (page status: {connection!r}; accepted "
             f"{value(driver, 'accepted')}, refused {value(driver, 'refused')})")


def screenshot(driver, path, settle=1.0):
    time.sleep(settle)  # the bar's transition, the chart's last draw (and during the sale, its line)
    if not driver.save_screenshot(path):
        fail(f"could not save the screenshot {path}")
    step(f"screenshot: {path}")


def confirm_control(driver, wait, button_id, expected):
    """Clicks a control, confirms in the page's dialog, and returns the answer it shows."""
    driver.find_element(By.ID, button_id).click()
    dialog_text = wait.until(EC.visibility_of_element_located((By.ID, "confirm-text"))).text
    yes = driver.find_element(By.ID, "confirm-yes")
    step(f"  {button_id}: the page asks {dialog_text!r}; clicking {yes.text!r}")
    yes.click()
    wait_for(driver, 15, f"the answer to {button_id}",
             lambda d: d.find_element(By.ID, "answer").get_attribute("data-kind") in ("ok", "error"))
    answer = driver.find_element(By.ID, "answer")
    text, kind = answer.text, answer.get_attribute("data-kind")
    step(f"  the page answers: {text!r}")
    if kind != "ok" or not text.startswith(expected):
        fail(f"{button_id}: expected an answer starting with {expected!r}, the page shows {text!r}")
    return text


def join_expecting(base, campaign, user, wanted, seconds=5):
    """A join of a new user until it answers one of `wanted` ((status, code) pairs; code None for
    any), for a few seconds: a control reaches the join path within about a second."""
    deadline = time.monotonic() + seconds
    while True:
        status, body = join(base, campaign, user)
        LATER_JOINS.append(status)
        code = (body or {}).get("code")
        if any(status == s and (c is None or c == code) for s, c in wanted):
            return user, status, code
        if time.monotonic() > deadline:
            fail(f"a join of user {user} answered {status} {code}, expected one of {wanted}")
        user += 1
        time.sleep(0.2)


def main(base, token, shot):
    base = base.rstrip("/")
    root, ext = os.path.splitext(shot)
    controls_shot = f"{root}-controls{ext or '.png'}"
    os.makedirs(os.path.dirname(os.path.abspath(shot)), exist_ok=True)

    name = f"Console check {time.strftime('%Y-%m-%d %H:%M:%S')}"
    status, campaign = http("POST", f"{base}/api/v1/campaigns", {"name": name, "totalStock": STOCK}, token)
    if status != 201 or "id" not in (campaign or {}):
        fail(f"creating the campaign answered {status}: {campaign}")
    cid = campaign["id"]
    step(f"1. created campaign {cid} ({name!r}, {STOCK} units), state {campaign.get('state')}")

    driver = browser()
    try:
        wait = WebDriverWait(driver, 15)
        driver.get(f"{base}/console#campaign={cid}")
        wait_for(driver, 20, "the live view of the campaign",
                 lambda d: d.find_element(By.ID, "connection").get_attribute("data-state") == "live"
                 and d.find_element(By.ID, "campaign-name").text == name
                 and value(d, "accepted") == 0)
        step(f"2. {base}/console#campaign={cid}: live, {driver.find_element(By.ID, 'campaign-name').text!r}, "
             f"state {driver.find_element(By.ID, 'state').text}, accepted 0")
        listed = [b.get_attribute("data-campaign-id") for b in driver.find_elements(By.CSS_SELECTOR, "#campaigns button")]
        if str(cid) not in listed:
            fail(f"campaign {cid} is not in the page's campaign list {listed}")

        burst = Burst(base, cid)
        wait_for(driver, 30, "the first wins on the page", lambda d: (value(d, "accepted") or 0) > 0)
        screenshot(driver, shot, settle=3.0)  # a few seconds of the sale on the chart
        counts = burst.result()
        refused = counts["soldOut"] + counts["already"] + counts["otherRefused"]
        step(f"3. burst done: {counts}")
        if counts["failed"]:
            fail(f"{counts['failed']} joins failed (no answer, or not 201/409/422/429)")
        if counts["won"] != STOCK:
            fail(f"the burst won {counts['won']} units of {STOCK}")

        wait_for(driver, 30, f"the page showing {STOCK} accepted and {refused} refused",
                 lambda d: value(d, "accepted") == STOCK and value(d, "refused") == refused)
        if not poll(10, lambda: refused_count(base, cid) == refused):
            fail(f"GET /api/v1/campaigns/{cid} answers refusedCount {refused_count(base, cid)}; "
                 f"the page and the burst say {refused}")
        rows = {r.get_attribute("data-code"): r for r in driver.find_elements(By.CSS_SELECTOR, "#reasons tr")}
        sold_out = rows.get("SOLD_OUT")
        shown = float(sold_out.find_element(By.CSS_SELECTOR, "td").get_attribute("data-value")) if sold_out else 0
        if shown != counts["soldOut"]:
            fail(f"the page's SOLD_OUT row shows {shown}, the burst saw {counts['soldOut']}")
        step(f"4. the page shows accepted {STOCK}, refused {refused} (= refusedCount of the API), "
             f"SOLD_OUT {int(shown)}, usage {driver.find_element(By.ID, 'usage').text}")
        # No confirmation window: every win is confirmed at acceptance, none cancelled or expired,
        # and no hold runs out (the stats consumer's figures, a moment behind the wins).
        wait_for(driver, 30, f"the page showing {STOCK} wins confirmed, 0 cancelled, 0 expired",
                 lambda d: value(d, "outcomes") == STOCK
                 and d.find_element(By.ID, "outcomes").text == f"{STOCK} · 0 · 0 · 0")
        if value(driver, "next-expiry") is not None:
            fail(f"no win is held, yet the page shows the next hold running out: "
                 f"{driver.find_element(By.ID, 'next-expiry').text}")
        step(f"   confirmed · cancelled · expired · refunded: {driver.find_element(By.ID, 'outcomes').text}; "
             f"holds expiring within 60 s {driver.find_element(By.ID, 'holds-expiring').text}, "
             f"next hold runs out {driver.find_element(By.ID, 'next-expiry').text}")

        field = driver.find_element(By.ID, "admin-token")
        field.send_keys(token)
        driver.find_element(By.ID, "token-save").click()
        wait.until(EC.visibility_of_element_located((By.ID, "pause")))
        step("5. admin token entered in the page; the controls are shown")
        confirm_control(driver, wait, "pause", "Paused")
        user, status, code = join_expecting(base, cid, PAUSED_USER, [(422, "CAMPAIGN_PAUSED")])
        step(f"  a join of user {user} while paused: {status} {code}")
        wait_for(driver, 10, "the PAUSED badge",
                 lambda d: d.find_element(By.ID, "state").get_attribute("data-state") == "PAUSED")
        confirm_control(driver, wait, "resume", "Resumed")
        user, status, code = join_expecting(base, cid, user + 1, [(409, "SOLD_OUT"), (201, None)])
        step(f"  a join of user {user} after resuming: {status} {code or ''}".rstrip())

        # Refusals reach MySQL about once a second (each instance flushes its counts).
        later = sum(1 for status in LATER_JOINS if status != 201)
        api_refused = refused + later
        if not poll(10, lambda: refused_count(base, cid) == api_refused):
            fail(f"refusedCount is {refused_count(base, cid)} after {later} more refused joins, "
                 f"expected {api_refused}")
        wait_for(driver, 15, f"the page's refused total reaching the API's {api_refused}",
                 lambda d: value(d, "refused") == api_refused)
        paused_row = wait_for(driver, 10, "a CAMPAIGN_PAUSED row in the refusals table",
                              lambda d: d.find_elements(By.CSS_SELECTOR, '#reasons tr[data-code="CAMPAIGN_PAUSED"]'))
        step(f"  the page shows refused {int(value(driver, 'refused'))}, with the row "
             f"{paused_row[0].text.replace(chr(10), ' ')!r}")
        driver.execute_script("document.getElementById('admin-title').scrollIntoView()")
        screenshot(driver, controls_shot)

        # 5b. The bot check switched on through the page: the campaign's joins ask for it; back
        # to the service's default: they do not (BOT_CHECK is off here).
        def bot_check_shown():
            status, shown = http("GET", f"{base}/api/v1/campaigns/{cid}", None, token)
            return (shown or {}).get("botCheck", "absent") if status == 200 else f"HTTP {status}"

        confirm_control(driver, wait, "bot-check-on", "Bot check on")
        # Public reads come from a copy of up to a second.
        if not poll(5, lambda: bot_check_shown() is True):
            fail(f"after the page's switch the campaign shows botCheck {bot_check_shown()!r}")
        user, status, code = join_expecting(base, cid, user + 1, [(403, "BOT_CHECK_FAILED")])
        step(f"  a join of user {user} without a solved check: {status} {code}")
        confirm_control(driver, wait, "bot-check-default", "Bot check: the service's default")
        if not poll(5, lambda: bot_check_shown() == "absent"):
            fail(f"back to the default, the campaign still shows botCheck {bot_check_shown()!r}")

        # A bucketed campaign: its buckets' balance, for the admin the page holds a token of.
        status, bucketed = http("POST", f"{base}/api/v1/campaigns",
                                {"name": f"{name} (buckets)", "totalStock": 40, "buckets": 8}, token)
        if status != 201 or "id" not in (bucketed or {}):
            fail(f"creating the bucketed campaign answered {status}: {bucketed}")
        bid = bucketed["id"]
        for user in range(1, 6):
            join(base, bid, user)
        driver.get(f"{base}/console#campaign={bid}")
        cells = wait_for(driver, 20, "the buckets panel with 8 buckets",
                         lambda d: d.find_element(By.ID, "buckets-panel").is_displayed()
                         and len(d.find_elements(By.CSS_SELECTOR, "#buckets-grid .bucket")) == 8
                         and d.find_elements(By.CSS_SELECTOR, "#buckets-grid .bucket"))
        summary = driver.find_element(By.ID, "buckets-summary").text
        if not summary.startswith("8 buckets"):
            fail(f"the buckets panel says {summary!r}")
        step(f"6. campaign {bid} of 8 buckets: the panel shows {len(cells)} buckets, {summary!r}")

        # Holds: three wins held for 600 s, one of them cancelled. Nothing runs out within 60 s,
        # the next hold in 10 minutes, and the page says what became of the wins.
        status, held = http("POST", f"{base}/api/v1/campaigns",
                            {"name": f"{name} (holds)", "totalStock": 5, "confirmWithinSeconds": 600}, token)
        if status != 201 or "id" not in (held or {}):
            fail(f"creating the campaign with holds answered {status}: {held}")
        hid = held["id"]
        for user in (1, 2, 3):
            status, body = join(base, hid, user)
            if status != 201 or (body or {}).get("status") != "HELD":
                fail(f"user {user}'s join of campaign {hid} answered {status}: {body}")
        status, body = http("POST", f"{base}/api/v1/campaigns/{hid}/participations/1/cancel")
        if status != 200:
            fail(f"user 1's cancel answered {status}: {body}")
        driver.get(f"{base}/console#campaign={hid}")
        wait_for(driver, 20, "2 held, 0 confirmed · 1 cancelled · 0 expired · 0 refunded, the next hold in ~10 min",
                 lambda d: value(d, "held-stock") == 2 and value(d, "holds-expiring") == 0
                 and d.find_element(By.ID, "outcomes").text == "0 · 1 · 0 · 0"
                 and 540 <= (value(d, "next-expiry") or 0) <= 600)
        step(f"6b. campaign {hid} with holds: held {driver.find_element(By.ID, 'held-stock').text}, "
             f"expiring within 60 s {driver.find_element(By.ID, 'holds-expiring').text}, next hold runs out "
             f"{driver.find_element(By.ID, 'next-expiry').text}, confirmed · cancelled · expired · refunded "
             f"{driver.find_element(By.ID, 'outcomes').text}")
        # A refund: user 2 pays, an admin cancels the confirmed win. Each win is shown once, so
        # the four figures and the one hold left add up to the three wins.
        status, body = http("POST", f"{base}/api/v1/campaigns/{hid}/participations/2/confirm")
        if status != 200:
            fail(f"user 2's confirmation answered {status}: {body}")
        status, body = http("POST", f"{base}/api/v1/campaigns/{hid}/participations/2/cancel", None, token)
        if status != 200:
            fail(f"the refund of user 2 answered {status}: {body}")
        wait_for(driver, 20, "1 held, 0 confirmed · 1 cancelled · 0 expired · 1 refunded",
                 lambda d: value(d, "held-stock") == 1
                 and d.find_element(By.ID, "outcomes").text == "0 · 1 · 0 · 1")
        step(f"6c. a refund shown once: held {driver.find_element(By.ID, 'held-stock').text}, "
             f"confirmed · cancelled · expired · refunded {driver.find_element(By.ID, 'outcomes').text}")
        # The campaign list follows campaigns created elsewhere, without a reload.
        status, later = http("POST", f"{base}/api/v1/campaigns", {"name": f"{name} (later)", "totalStock": 1}, token)
        if status != 201 or "id" not in (later or {}):
            fail(f"creating a campaign answered {status}: {later}")
        wait_for(driver, 25, f"campaign {later['id']} in the list without a reload",
                 lambda d: d.find_elements(By.CSS_SELECTOR, f"#campaigns button[data-campaign-id='{later['id']}']"))
        step(f"6d. campaign {later['id']}, created after the page loaded, is in its list")

        # A drop: a group of two campaigns, one with a waiting room and a waitlist. The page of
        # either shows both side by side, their figures as the API has them; a name opens it.
        status, grp = http("POST", f"{base}/api/v1/groups", {"name": f"{name} (drop)", "perUserLimit": 2}, token)
        if status != 201 or "id" not in (grp or {}):
            fail(f"creating the group answered {status}: {grp}")
        gid = grp["id"]
        members = []
        for extra in ({"totalStock": 4}, {"totalStock": 2, "admission": "QUEUE",
                                           "admissionRatePerSecond": 50, "offerSeconds": 60}):
            status, c = http("POST", f"{base}/api/v1/campaigns",
                             {"name": f"{name} (size {len(members) + 40})", "groupId": gid, **extra}, token)
            if status != 201 or "id" not in (c or {}):
                fail(f"creating a campaign of group {gid} answered {status}: {c}")
            members.append(c["id"])
        for user in (1, 2, 3):
            join(base, members[0], user)
        status, body = http("POST", f"{base}/api/v1/campaigns/{members[1]}/queue", {"userId": 7})
        if status != 202:
            fail(f"queueing in campaign {members[1]} answered {status}: {body}")
        driver.get(f"{base}/console#campaign={members[0]}")
        rows = wait_for(driver, 20, "the group panel with its two campaigns, 3 wins in the first",
                        lambda d: d.find_element(By.ID, "group-panel").is_displayed()
                        and [r.get_attribute("data-campaign-id")
                             for r in d.find_elements(By.CSS_SELECTOR, "#group-campaigns tr")]
                        == [str(m) for m in members]
                        and d.find_elements(By.CSS_SELECTOR, "#group-campaigns tr td")[2].text == "3"
                        and d.find_elements(By.CSS_SELECTOR, "#group-campaigns tr"))
        cells = [[td.get_attribute("data-value") for td in r.find_elements(By.TAG_NAME, "td")[1:]] for r in rows]
        # Per row: free, wins, queue, waitlist, offers open.
        if cells[0] != ["1", "3", "", "", ""] or cells[1][:2] != ["2", "0"] or cells[1][2] == "":
            fail(f"the group panel shows {cells}")
        current = [r.get_attribute("data-campaign-id") for r in rows if r.get_attribute("aria-current") == "true"]
        if current != [str(members[0])]:
            fail(f"the group panel marks {current} as the campaign watched")
        summary = driver.find_element(By.ID, "group-summary").text
        rows[1].find_element(By.TAG_NAME, "a").click()
        wait_for(driver, 20, f"campaign {members[1]} opened from the group panel",
                 lambda d: d.find_element(By.ID, "campaign-id").text == f"#{members[1]}"
                 and value(d, "total-stock") == 2)
        step(f"6e. group {gid}: {summary!r}; rows {cells}; its second campaign opened from the panel")

        severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        if severe:
            fail("the browser logged errors:\n  " + "\n  ".join(e.get("message", "") for e in severe))
        step("7. no error in the browser's log")
    finally:
        driver.quit()
    step("all checks passed")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
