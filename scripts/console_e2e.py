"""Drives allim's operator console in headless Chromium (Debian's chromium and chromedriver,
through Selenium; nothing downloads a browser). tests/it/console.rs starts allim with data in
it and runs this; it prints a JSON summary of what it saw and saves screenshots.

Environment: BASE (the signed console's allim), TOKEN (admin), KEY (an idempotency key to find),
KEY_ID (the delivery with that key), DEAD_ID (a dead delivery to redrive), ALARM (an alarm to silence), OPEN_BASE (an allim without
tokens), SHOTS (the folder for screenshots).
"""

import json
import os

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

base, token = os.environ["BASE"], os.environ["TOKEN"]
shots = os.environ["SHOTS"]
os.makedirs(shots, exist_ok=True)
out = {}


def browser(width, height, phone=False):
    opts = webdriver.ChromeOptions()
    if phone:
        # A desktop window cannot be narrower than 500 px; a phone is emulated instead.
        opts.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2}})
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--window-size={width},{height}", "--lang=ko-KR"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=opts)


def wait_for(d, css, text=None, timeout=20):
    """Waits until an element matching `css` (and holding `text`) is shown; returns it."""
    def found(drv):
        # The page re-renders (refreshes, navigation): an element may go stale while looked at.
        try:
            for el in drv.find_elements(By.CSS_SELECTOR, css):
                if el.is_displayed() and (text is None or text in el.text):
                    return el
        except StaleElementReferenceException:
            pass
        return False
    try:
        return WebDriverWait(d, timeout).until(found)
    except TimeoutException:
        raise AssertionError(f"{css!r} with {text!r} did not appear; page: {d.find_element(By.TAG_NAME, 'main').text[:800]}")


def shot(d, name):
    d.save_screenshot(os.path.join(shots, name + ".png"))


d = browser(1280, 900)
try:
    # Sign in.
    d.get(base + "/console")
    field = wait_for(d, "#token")
    field.send_keys(token)
    d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for(d, "main h1", "Overview")
    wait_for(d, "main table", "APP_NOTIFICATION")
    shot(d, "overview")
    out["token_in_url"] = token in d.current_url
    out["token_in_local_storage"] = token in d.execute_script("return JSON.stringify(localStorage)")
    out["token_in_session_storage"] = token in d.execute_script("return JSON.stringify(sessionStorage)")
    out["sms_lane"] = wait_for(d, "main table", "sms").text

    # Find a delivery by its idempotency key.
    d.find_element(By.LINK_TEXT, "Deliveries").click()
    key = wait_for(d, "input[name=key]")
    key.send_keys(os.environ["KEY"])
    key.submit()
    # The list re-renders with the search's result: wait until it shows that delivery alone
    # (before the search it lists every delivery, this one among them).
    def only_the_keyed(drv):
        try:
            rows = drv.find_elements(By.CSS_SELECTOR, "main tbody tr")
            links = drv.find_elements(By.CSS_SELECTOR, "main tbody a")
            return len(rows) == 1 and len(links) == 1 and links[0].text == os.environ["KEY_ID"] and links[0]
        except StaleElementReferenceException:
            return False
    try:
        link = WebDriverWait(d, 20).until(only_the_keyed)
    except TimeoutException:
        raise AssertionError("the search by key did not come down to one delivery: " + d.find_element(By.TAG_NAME, "main").text[:800])
    out["found"] = link.text
    out["found_rows"] = 1
    link.click()
    wait_for(d, "main h1", "Delivery")
    out["detail"] = d.find_element(By.TAG_NAME, "main").text
    shot(d, "delivery")

    # Redrive the dead letter, after a confirmation that says how many.
    d.find_element(By.LINK_TEXT, "Dead letters").click()
    box = wait_for(d, f"input[type=checkbox][value='{os.environ['DEAD_ID']}']")
    shot(d, "dead-letters")
    box.click()
    d.find_element(By.XPATH, "//button[text()='Redrive selected']").click()
    alert = WebDriverWait(d, 10).until(ec.alert_is_present())
    out["confirm"] = alert.text
    alert.accept()
    wait_for(d, "[role=status]", "Redriven: 1")
    # It is delivered once the dispatcher sends it again (the page refreshes itself meanwhile).
    d.get(base + "/console#/deliveries/" + os.environ["DEAD_ID"])
    badge = wait_for(d, "main dd .badge", "delivered", timeout=30)
    out["redriven_page"] = wait_for(d, "main table", "delivered").text
    out["after_redrive"] = badge.text

    # Silence an alarm from its row.
    d.find_element(By.LINK_TEXT, "Alarms").click()
    alarm = os.environ["ALARM"]
    button = wait_for(d, "main button", "Silence " + alarm)
    form = button.find_element(By.XPATH, "./..")
    form.find_element(By.NAME, "reason").send_keys("배포 중 — deploying")
    button.click()
    wait_for(d, "main table", "배포 중")
    out["silences"] = d.find_element(By.CSS_SELECTOR, "main table").text
    # Try the rules with that alarm's next change: the silence just made would hold it.
    wait_for(d, "main button", "Try the rules with " + alarm).click()
    d.find_element(By.XPATH, "//button[text()='Try the rules']").click()
    out["tried"] = wait_for(d, "main [role=status]", "silenced").text
    shot(d, "alarms")

    # Watchers: poll one now.
    d.find_element(By.LINK_TEXT, "Watchers").click()
    wait_for(d, "main button", "Poll now").click()
    out["watchers"] = wait_for(d, "main [role=status]", "orders:").text
    shot(d, "watchers")

    # A user: their inbox.
    d.get(base + "/console#/users/console-user")
    out["inbox"] = wait_for(d, "main table", "배송").text

    # Keyboard: the navigation is reachable with Tab.
    d.get(base + "/console#/overview")
    wait_for(d, "main h1", "Overview")
    # Each page takes the focus on arrival; Shift+Tab from there walks back through the header.
    focused = []
    for _ in range(10):
        webdriver.ActionChains(d).key_down("\ue008").send_keys("\ue004").key_up("\ue008").perform()
        focused.append(d.execute_script("return document.activeElement.textContent.trim()"))
    out["tab_order"] = focused

    # Sign out: back to the sign-in form, the token gone.
    d.find_element(By.ID, "signout").click()
    wait_for(d, "#token")
    out["after_sign_out"] = token in d.execute_script("return JSON.stringify(sessionStorage)")
finally:
    d.quit()

# Phone width.
d = browser(390, 844, phone=True)
try:
    d.get(base + "/console")
    wait_for(d, "#token").send_keys(token)
    d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for(d, "main table", "APP_NOTIFICATION")
    out["phone_scroll_width"] = d.execute_script("return document.documentElement.scrollWidth")
    shot(d, "overview-phone")
finally:
    d.quit()

# Without tokens (loopback): it opens directly and says so.
d = browser(1280, 900)
try:
    d.get(os.environ["OPEN_BASE"] + "/console")
    out["open_banner"] = wait_for(d, "#banner", "no tokens").text
    shot(d, "open")
finally:
    d.quit()

print(json.dumps(out, ensure_ascii=False))
