#!/usr/bin/env python3
"""The waiting room's bot check in a real browser (docs/design.md §16 "Bots at the door").

Run by scripts/bot-check-page.sh against a service started with BOT_CHECK=pow and this page's
origin in CORS_ALLOWED_ORIGINS. Serves examples/ on a port of its own, creates a QUEUE campaign,
and checks that:
  1. a client that does not solve the challenge is refused BOT_CHECK_FAILED and gets no ticket;
  2. examples/waiting-room.html in headless Chromium asks the challenge, solves it with WebCrypto,
     queues, is admitted and wins (its result shows HELD or CONFIRMED);
  3. the service counted one passed check and one missing (firstcome_bot_checks_total).
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
        driver.get(f"http://127.0.0.1:{page_port}/waiting-room.html?api={base}&campaign={campaign}&user=7")
        driver.find_element(By.ID, "queue").click()
        deadline = time.monotonic() + 60
        while driver.find_element(By.ID, "step").text != "done":
            if time.monotonic() > deadline:
                fail(f"the page did not finish: step {driver.find_element(By.ID, 'step').text!r}")
            time.sleep(0.2)
        result = driver.find_element(By.ID, "result").text
        solved = driver.find_element(By.ID, "solved").text
        if not (result.startswith("HELD") or result.startswith("CONFIRMED")):
            logs = [e["message"] for e in driver.get_log("browser")]
            fail(f"the page's result is {result!r} (bot check: {solved!r}); console: {logs[-5:]}")
        step(f"   bot check {solved}; result {result}")
    finally:
        driver.quit()
        server.shutdown()

    step("3. each decision counted")
    passed, missing = metric(base, token, "passed"), metric(base, token, "missing")
    if (passed, missing) != (1.0, 1.0):
        fail(f"firstcome_bot_checks_total: passed {passed}, missing {missing} (want 1 and 1)")
    step("ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
