#!/usr/bin/python3
"""console_browser.py -- the status console in a real browser.

Drives Debian's chromium headless through chromedriver (python3-selenium)
against the real egoi-router binary and a real local HTTP receiver:

  1. a forward to a failing receiver (HTTP 500) becomes a dead letter;
  2. a wrong admin token in the login form is refused (error shown, no
     session cookie);
  3. the right token logs in: the session cookie is HttpOnly and
     SameSite=Strict, the page shows the dead letter (count 1, its row),
     the same-origin style sheet is applied (CSP default-src 'self' lets
     it through), the browser logs no CSP violation, and on a phone-sized
     window nothing overflows sideways;
  4. a form POST stripped of its CSRF token is refused and purges nothing;
  5. with the receiver healthy (HTTP 200), clicking Replay re-delivers the
     dead letter (same body, same delivery id) and the count goes to 0;
  6. logout returns to the login form.

Screenshots go to OUT_DIR (a build directory, not committed).
Usage: console_browser.py EGOI_ROUTER_BIN OUT_DIR
Every wait is bounded; an alarm ends a run that would hang.
"""
import http.server
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ADMIN_TOKEN = "browser-admin-s3cret"
AUTH_TOKEN = "browser-intake-token"
BATCH = b'{"events":[{"action":"email_open","bid":"42","email":"ana.silva@example.pt"}]}'
WAIT_S = 20


def fail(msg):
    raise AssertionError(msg)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver(http.server.ThreadingHTTPServer):
    """Records every request; answers self.status."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.status = 500
        self.got = []
        self.lock = threading.Lock()

    def count(self):
        with self.lock:
            return len(self.got)


class ReceiverHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        with self.server.lock:
            self.server.got.append((self.path, dict(self.headers), body))
            status = self.server.status
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def wait_for(what, cond, timeout=WAIT_S):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    fail("timed out waiting for " + what)


def http_get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def dead_count(db, sql):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def text_of(driver, css):
    return driver.find_element(By.CSS_SELECTOR, css).text


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    binary, out_dir = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    os.makedirs(out_dir, exist_ok=True)
    signal.alarm(240)   # the whole run, whatever hangs
    tmp = tempfile.mkdtemp(prefix="egoi-browser-")
    recv = Receiver()
    threading.Thread(target=recv.serve_forever, daemon=True).start()
    recv_url = "http://127.0.0.1:%d" % recv.server_address[1]
    port, admin = free_port(), free_port()
    base = "http://127.0.0.1:%d" % admin
    with open(os.path.join(tmp, "rules.lua"), "w") as f:
        f.write("function route(e, m) forward('%s/crm', { name = 'crm' }) end\n" % recv_url)
    with open(os.path.join(tmp, "router.conf"), "w") as f:
        f.write("listen = 127.0.0.1:%d\nauth_token = %s\nrules = rules.lua\n"
                "data_dir = data\noutput_dir = out\nadmin_listen = 127.0.0.1:%d\n"
                "admin_token = %s\nforward_max_attempts = 1\nforward_timeout = 2s\n"
                % (port, AUTH_TOKEN, admin, ADMIN_TOKEN))
    log = open(os.path.join(out_dir, "daemon.log"), "w")
    daemon = subprocess.Popen([binary, "run", "-c", "router.conf"], cwd=tmp, stdout=log,
                              stderr=subprocess.STDOUT)
    driver = None
    ok = False
    try:
        wait_for("the admin listener", lambda: http_get(base + "/healthz")[0] == 200)
        req = urllib.request.Request("http://127.0.0.1:%d/hooks/egoi" % port, data=BATCH,
                                     headers={"Content-Type": "application/json",
                                              "X-Router-Token": AUTH_TOKEN})
        with urllib.request.urlopen(req, timeout=10) as r:
            if json.loads(r.read()) != {"accepted": 1, "rejected": 0}:
                fail("the batch was not accepted")
        db = os.path.join(tmp, "data", "outbox.db")
        wait_for("the dead letter", lambda: os.path.exists(db) and dead_count(
            db, "SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL") == 1)
        first_path, first_headers, first_body = recv.got[0]

        opts = Options()
        opts.binary_location = "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--user-data-dir=" + os.path.join(tmp, "profile"), "--window-size=1280,1400",
                  "--no-first-run", "--disable-extensions", "--disable-background-networking"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        driver.set_page_load_timeout(WAIT_S)
        driver.set_script_timeout(WAIT_S)
        wait = WebDriverWait(driver, WAIT_S)

        # 2. a wrong token is refused
        driver.get(base + "/console")
        wait.until(lambda d: d.find_elements(By.ID, "token"))
        driver.find_element(By.ID, "token").send_keys("not-the-token")
        driver.find_element(By.ID, "login").click()
        wait.until(lambda d: d.find_elements(By.ID, "login-error"))
        if text_of(driver, "#login-error") != "wrong token":
            fail("the login error is " + text_of(driver, "#login-error"))
        if any(c["name"] == "egoi_console" for c in driver.get_cookies()):
            fail("a wrong token got a session cookie")
        if driver.find_elements(By.ID, "dead-open"):
            fail("a wrong token shows the console")

        # 3. the right one logs in and shows the dead letter
        driver.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
        driver.find_element(By.ID, "login").click()
        wait.until(lambda d: d.find_elements(By.ID, "dead-open"))
        cookie = [c for c in driver.get_cookies() if c["name"] == "egoi_console"]
        if len(cookie) != 1 or not cookie[0].get("httpOnly") or \
                cookie[0].get("sameSite") != "Strict":
            fail("session cookie: %r" % cookie)
        if text_of(driver, "#dead-open") != "1" or text_of(driver, "#dead-forward") != "1":
            fail("dead letters shown: " + text_of(driver, "#dead-open"))
        rows = driver.find_elements(By.CSS_SELECTOR, "#dead tr[id^=dead-]")
        if len(rows) != 1 or "HTTP 500" not in rows[0].text or "crm" not in rows[0].text:
            fail("dead letter rows: %r" % [r.text for r in rows])
        radius = driver.execute_script(
            "return getComputedStyle(document.querySelector('section')).borderTopLeftRadius")
        if radius != "8px":
            fail("the style sheet is not applied (section radius %r)" % radius)
        driver.save_screenshot(os.path.join(out_dir, "console-dead-letter.png"))
        driver.set_window_size(390, 844)
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth")
        driver.save_screenshot(os.path.join(out_dir, "console-phone.png"))
        if overflow > 1:
            fail("on a phone-sized window the page is %dpx too wide" % overflow)
        driver.set_window_size(1280, 1400)
        # the payload behind the click, e-mail masked
        rows[0].find_element(By.CSS_SELECTOR, "a").click()
        wait.until(lambda d: d.find_elements(By.ID, "payload"))
        payload = text_of(driver, "#payload")
        if "a***@e***.pt" not in payload or "ana.silva" in payload:
            fail("payload shown: " + payload)
        driver.save_screenshot(os.path.join(out_dir, "console-detail.png"))
        driver.back()
        wait.until(lambda d: d.find_elements(By.ID, "dead-open"))

        # 4. a POST without its CSRF token is refused and changes nothing
        purge_all = driver.find_element(By.CSS_SELECTOR, "button[value=purge-all]")
        driver.execute_script("arguments[0].form.querySelector('[name=csrf]').remove()",
                              purge_all)
        purge_all.click()
        wait.until(lambda d: d.find_elements(By.ID, "message"))
        if "CSRF" not in text_of(driver, "#message"):
            fail("POST without CSRF: " + text_of(driver, "#message"))
        if dead_count(db, "SELECT count(*) FROM dead_letters") != 1:
            fail("a POST without CSRF purged")
        driver.get(base + "/console")
        wait.until(lambda d: d.find_elements(By.ID, "dead-open"))
        if text_of(driver, "#dead-open") != "1":
            fail("after the refused POST the count is " + text_of(driver, "#dead-open"))

        # 5. the receiver is healthy again: Replay re-delivers
        with recv.lock:
            recv.status = 200
        before = recv.count()
        row = driver.find_element(By.CSS_SELECTOR, "#dead tr[id^=dead-]")
        row.find_element(By.CSS_SELECTOR, "button[value=replay-id]").click()
        wait.until(lambda d: d.find_elements(By.ID, "flash"))
        if text_of(driver, "#flash") != "replayed 1, skipped 0, failed 0":
            fail("replay said: " + text_of(driver, "#flash"))
        wait_for("the re-delivery", lambda: recv.count() > before)
        path, headers, body = recv.got[before]
        if path != first_path or body != first_body or \
                headers.get("X-Router-Delivery-Id") != first_headers.get("X-Router-Delivery-Id"):
            fail("the re-delivery differs: %r %r" % (path, headers))
        if text_of(driver, "#dead-open") != "0":
            fail("after the replay the count is " + text_of(driver, "#dead-open"))
        if not driver.find_elements(By.ID, "no-dead"):
            fail("the dead letter is still listed")
        wait_for("the outbox to empty",
                 lambda: dead_count(db, "SELECT count(*) FROM deliveries") == 0)
        driver.get(base + "/console")
        wait.until(lambda d: d.find_elements(By.ID, "dests"))
        wait_for("the delivery on the page", lambda: (driver.refresh() or True) and
                 "crm" in text_of(driver, "#dests") and
                 text_of(driver, "#dests tr:nth-child(2) td:nth-child(2)") == "1", 10)
        driver.save_screenshot(os.path.join(out_dir, "console-replayed.png"))

        # the browser saw no CSP violation, and no failed load but the
        # refusals this run asked for; the CSRF-less POST was a 403
        expected = ("/console - Failed to load resource: the server responded with a "
                    "status of 401", "/console/login - Failed to load resource: the server "
                    "responded with a status of 401", "/console/action - Failed to load "
                    "resource: the server responded with a status of 403",
                    "/favicon.ico - Failed to load resource: the server responded with a "
                    "status of 404")
        seen = driver.get_log("browser")
        bad = [e for e in seen if e.get("level") == "SEVERE" and
               not any(x in e.get("message", "") for x in expected)]
        bad += [e for e in seen if "Content Security Policy" in e.get("message", "")]
        if bad:
            fail("browser errors: %r" % bad)
        if not any(expected[2] in e.get("message", "") for e in seen):
            fail("the POST without CSRF was not answered 403: %r" % seen)

        # 6. logout
        driver.find_element(By.ID, "logout").click()
        wait.until(lambda d: d.find_elements(By.ID, "token"))
        ok = True
        print("console_browser: 6 steps passed; screenshots in " + out_dir)
    finally:
        if driver:
            driver.quit()
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        recv.shutdown()
        log.close()
        if not ok:
            with open(os.path.join(out_dir, "daemon.log")) as f:
                sys.stderr.write("".join(f.readlines()[-30:]))
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok and daemon.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
