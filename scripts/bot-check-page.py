#!/usr/bin/env python3
"""The waiting room's bot check in a real browser (docs/design.md §16 "Bots at the door").

Run by scripts/bot-check-page.sh against a service started with BOT_CHECK=pow and this page's
origin in CORS_ALLOWED_ORIGINS. Serves examples/ on a port of its own, creates a QUEUE campaign,
and checks that:
  1. a client that does not solve the challenge is refused BOT_CHECK_FAILED and gets no ticket;
  2. examples/waiting-room.html in headless Chromium asks the challenge, solves it with WebCrypto,
     queues, is admitted and wins (its result shows HELD or CONFIRMED);
  3. a visitor who queues while the stock is 0 is WAITLISTED, and the page keeps polling: when a
     held unit is cancelled, the offer admits it and it wins;
  4. the service counted every passed check and the one missing (firstcome_bot_checks_total).
Usage: bot-check-page.py <service base URL> <admin token> <page port>
"""

import functools
import os
import shutil
import sys
import threading
import time
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

from bench_common import http
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def step(text):
    print(f"[bot-check-page] {text}", flush=True)


def fail(text):
    print(f"[bot-check-page] FAILED: {text}", file=sys.stderr, flush=True)
    sys.exit(1)


def metric(base, token, reason):
    request = urllib.request.Request(f"{base}/metrics")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    line = f'firstcome_bot_checks_total{{reason="{reason}"}} '
    return sum(float(l[len(line):]) for l in text.splitlines() if l.startswith(line))


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve_examples(port):
    handler = functools.partial(Quiet, directory=os.path.join(ROOT, "examples"))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def browser():
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return webdriver.Chrome(options=options, service=Service(driver_path))


def main(base, token, page_port):
    base = base.rstrip("/")
    status, created = http("POST", f"{base}/api/v1/campaigns", {
        "name": "bot-check page", "totalStock": 5, "perUserLimit": 1,
        "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
        "admission": "QUEUE", "admissionRatePerSecond": 50,
    }, token)
    if status != 201:
        fail(f"creating the campaign answered {status}: {created}")
    campaign = created["id"]

    step("1. a client without a solved challenge gets no ticket")
    status, refused = http("POST", f"{base}/api/v1/campaigns/{campaign}/queue", {"userId": 8})
    if status != 403 or refused.get("code") != "BOT_CHECK_FAILED":
        fail(f"queueing without botCheck answered {status}: {refused}")

    step("2. the example page solves the challenge in Chromium, queues and wins")
    server = serve_examples(page_port)
    driver = browser()
    try:
        open_page(driver, page_port, base, campaign, 7)
        wins(driver, until_done(driver))

        step("3. a waitlisted visitor keeps polling and wins the unit a cancel gives back")
        waitlisted(driver, base, token, page_port)
    finally:
        driver.quit()
        server.shutdown()

    step("4. each decision counted")
    passed, missing = metric(base, token, "passed"), metric(base, token, "missing")
    if (passed, missing) != (3.0, 1.0):
        fail(f"firstcome_bot_checks_total: passed {passed}, missing {missing} (want 3 and 1)")
    step("ok")


def open_page(driver, page_port, base, campaign, user):
    driver.get(f"http://127.0.0.1:{page_port}/waiting-room.html?api={base}&campaign={campaign}&user={user}")
    driver.find_element(By.ID, "queue").click()


def until_done(driver, seen=None, bound=60):
    """Waits for the page's step to read "done", noting every state it showed in `seen`;
    returns the page's result."""
    deadline = time.monotonic() + bound
    while driver.find_element(By.ID, "step").text != "done":
        if seen is not None:
            seen.add(driver.find_element(By.ID, "state").text.split(",")[0])
        if time.monotonic() > deadline:
            fail(f"the page did not finish: step {driver.find_element(By.ID, 'step').text!r}, "
                 f"state {driver.find_element(By.ID, 'state').text!r}")
        time.sleep(0.2)
    return driver.find_element(By.ID, "result").text


def wins(driver, result):
    solved = driver.find_element(By.ID, "solved").text
    if not (result.startswith("HELD") or result.startswith("CONFIRMED")):
        logs = [e["message"] for e in driver.get_log("browser")]
        fail(f"the page's result is {result!r} (bot check: {solved!r}); console: {logs[-5:]}")
    step(f"   bot check {solved}; result {result}")


def waitlisted(driver, base, token, page_port):
    """A one-unit campaign with a waitlist: user 20 wins it (a hold), user 21 queues while the
    stock is 0 and is WAITLISTED; user 20 cancels, the offer admits user 21's page, which wins."""
    status, created = http("POST", f"{base}/api/v1/campaigns", {
        "name": "waitlist page", "totalStock": 1, "perUserLimit": 1,
        "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
        "admission": "QUEUE", "admissionRatePerSecond": 50,
        "confirmWithinSeconds": 600, "offerSeconds": 60,
    }, token)
    if status != 201:
        fail(f"creating the waitlist campaign answered {status}: {created}")
    campaign = created["id"]
    open_page(driver, page_port, base, campaign, 20)
    result = until_done(driver)
    if not result.startswith("HELD"):
        fail(f"user 20's result is {result!r}, want a hold")
    open_page(driver, page_port, base, campaign, 21)
    deadline = time.monotonic() + 30
    while not driver.find_element(By.ID, "state").text.startswith("WAITLISTED"):
        if time.monotonic() > deadline or driver.find_element(By.ID, "step").text == "done":
            fail(f"user 21 was not waitlisted: state {driver.find_element(By.ID, 'state').text!r}, "
                 f"result {driver.find_element(By.ID, 'result').text!r}")
        time.sleep(0.2)
    step("   user 21 waitlisted; user 20 cancels the hold")
    # Two polls while waitlisted: the page goes on asking, it does not stop at the state.
    time.sleep(2.5)
    status, cancelled = http("POST", f"{base}/api/v1/campaigns/{campaign}/participations/20/cancel", {})
    if status != 200:
        fail(f"cancelling user 20's hold answered {status}: {cancelled}")
    seen = set()
    result = until_done(driver, seen)
    wins(driver, result)
    if "ADMITTED" not in seen and "WAITLISTED" not in seen:
        fail(f"the page's states were {sorted(seen)}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
