#!/usr/bin/env python3
"""Swagger UI's "Authorize" in a real browser (headless Chromium through Selenium), on demand:
opens /docs of a running service started with USER_AUTH=jwt, checks that the dialog offers both
schemes (AdminAuth, UserJwt), authorizes with a user's JWT, and joins campaign CAMPAIGN for USER
through "Try it out". Prints the status Swagger UI shows (201 for the token's own user, 403
USER_MISMATCH for another) and saves screenshots to /tmp/swagger-*.png.

Needs: apt-get install chromium chromium-driver; pip install selenium.
Usage: swagger-ui-check.py <base url> <file with the user's JWT> <campaign id> <user id>
  e.g. firstcome token --user 42 > /tmp/42.jwt; swagger-ui-check.py http://127.0.0.1:8080 /tmp/42.jwt 1 42
"""

import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

JOIN = "#operations-Participations-post_api_v1_campaigns__id__participations"


def main(base, token_file, campaign, user):
    token = open(token_file).read().strip()
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options)
    wait = WebDriverWait(driver, 30)
    try:
        driver.get(f"{base}/docs")
        wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "button.authorize"))).click()
        dialog = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".dialog-ux")))
        time.sleep(0.5)
        driver.save_screenshot("/tmp/swagger-authorize.png")
        schemes = [h.text.split()[0] for h in dialog.find_elements(By.CSS_SELECTOR, ".auth-container h4")]
        print("schemes in the Authorize dialog:", schemes)
        if sorted(schemes) != ["AdminAuth", "UserJwt"]:
            sys.exit("expected AdminAuth and UserJwt")
        for form in dialog.find_elements(By.CSS_SELECTOR, ".auth-container"):
            if form.find_element(By.CSS_SELECTOR, "h4").text.startswith("UserJwt"):
                form.find_element(By.CSS_SELECTOR, "input").send_keys(token)
                form.find_element(By.CSS_SELECTOR, "button.authorize").click()
        driver.find_element(By.CSS_SELECTOR, ".dialog-ux button.close-modal").click()
        op = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, JOIN)))
        op.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
        wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, f"{JOIN} .try-out__btn"))).click()
        op.find_element(By.CSS_SELECTOR, 'input[placeholder="id"]').send_keys(str(campaign))
        body = op.find_element(By.CSS_SELECTOR, "textarea.body-param__text")
        body.send_keys(Keys.CONTROL, "a")
        body.send_keys(Keys.DELETE)
        body.send_keys('{"userId": %d}' % user)
        op.find_element(By.CSS_SELECTOR, ".execute").click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, f"{JOIN} .live-responses-table tbody")))
        status = op.find_elements(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_status")[0].text
        sent = "Authorization: Bearer " + token in op.find_element(By.CSS_SELECTOR, ".curl-command").text
        driver.save_screenshot("/tmp/swagger-join.png")
        print(f"join of user {user} in Swagger UI: {status}; the request carried the JWT: {sent}")
    finally:
        driver.quit()


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(sys.argv[1].rstrip("/"), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
