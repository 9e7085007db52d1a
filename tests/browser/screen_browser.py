#!/usr/bin/env python3
"""Real-browser test of the taxi passenger screen (docs/SCREEN.md).

A cab's passenger display is a kiosk browser (landscape, 800x480 CSS px here) showing
lanegated's /screen/{lane}. This test runs the real processes -- `lanegate-sim devices`,
`lanegate-sim provider`, `lanegate-sim invoicing` and `lanegated` with a config derived
from config/examples/demo.toml (temp workdir, free ports, fresh demo PKI; the taxi lane
with code_wait_ms = CODE_WAIT_MS) -- and, in Debian's Chromium
(headless, driven by chromedriver via Selenium):

  0. the screen of the taxi lane shows the idle welcome before any trip;
  1. the simulated meter ends a trip: the screen shows the fare and asks for the
     passenger's payment code;
  2. nobody scans a code: after code_wait_ms the screen shows a Native QR beside the fare
     (the feed's QR, drawn big enough to scan);
  3. the test pays that Native order in the provider sandbox (its admin route): the
     screen shows "paid", the method, and the receipt's invoice-claim QR with the claim
     code the operator's receipt route gives for the trip;
  4. the English switch changes every text on the screen;
  5. the provider sandbox is stopped and a second trip ends: the screen shows the offline
     view (pay the driver) with that trip's claim QR, in Chinese again (a new passenger);
  6. lanegated is stopped: the screen keeps the last view and shows "reconnecting".

Every view must fit the screen without scrolling, with the fare in large type and dark
text on a light background (contrast >= 7:1). A screenshot of each view goes to
$LANEGATE_ARTIFACT_DIR (default <bin dir>/test-artifacts/browser), named screen-*.png.
The browser console is collected and any JavaScript or CSP error fails the test. Every
wait is bounded; every child process is killed on exit, also on failure.

The process harness (children in their own process groups under a watchdog, free ports,
the demo config helpers, the HTTPS client trusting the demo CA) is claim_browser.py's,
imported from beside this file.

Usage: screen_browser.py [--bin-dir DIR] [--source-dir DIR] [--artifact-dir DIR] [--keep]
(defaults from $LANEGATE_BIN_DIR, $LANEGATE_SOURCE_DIR, $LANEGATE_ARTIFACT_DIR).
Exit status: 0 passed, 1 an assertion failed, 2 the environment is unusable.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree from the import below
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from claim_browser import (CHROMEDRIVER, CHROMIUM, OPERATOR_TOKEN, EnvironmentProblem,  # noqa: E402
                           Http, Processes, TestFailure, _die_with_parent, check, derive_config,
                           free_ports, port_of, spki_pin, tables, tail, toml_section, wait_for)

# The passenger display: a landscape kiosk screen, CSS pixels, device pixel ratio 1.
SCREEN = {"width": 800, "height": 480}
# How long the lane waits for a scanned payment code before showing the Native QR. Short
# so the test is quick; long enough that the page (polling once a second) shows the fare
# view before the QR replaces it, also on a loaded CI machine.
CODE_WAIT_MS = 3000
# The meter's payment type on the trip record: 0x00 "cash" is what a meter reports when
# the driver took no card; the gateway offers electronic payment for it (a card-paid
# trip, 0x01/0x03, never gets a payment screen).
TRIP_PAYMENT_TYPE = 0x00
# Products of the sandbox's demo merchant: the demo's parking and toll ones and the
# in-cab payment products.
PRODUCTS = "PARKING,HIGHWAY,TAXI,CODEPAY,NATIVE"
CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef\u3000-\u303f]")


def log(msg):
    print(f"screen_browser: {msg}", flush=True)


class Children(Processes):
    """Processes, plus stopping one child on purpose (the provider going away)."""

    def __init__(self, workdir):
        super().__init__(workdir)
        self.stopped = []  # (name, Popen, log path) of children stopped on purpose

    def stop(self, name):
        for entry in list(self.children):
            n, proc, _ = entry
            if n != name:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            self.children.remove(entry)
            self.stopped.append(entry)
            return
        raise TestFailure(f"no running child named {name}")

    def logs(self):
        return super().logs() + [(name, path) for name, _, path in self.stopped]


def taxi_config(text, workdir):
    """The derived demo config with the test cab's waits: code_wait_ms = CODE_WAIT_MS and a
    QR that stays 120 s (the demo's taxi lane already has its payment-code reader)."""
    del workdir  # the demo's own reader path is already under the workdir
    taxi = [b for b in tables(text, "lane") if b.get("mode") == "taxi"]
    check(taxi, "demo.toml has no taxi lane")
    check(taxi[0].get("code_reader"), "demo.toml's taxi lane has no code_reader")
    for key, value in (("code_wait_ms", CODE_WAIT_MS), ("qr_wait_s", 120)):
        text, n = re.subn(r"(?m)^" + key + r"\s*=.*$", f"{key} = {value}", text, count=1)
        check(n == 1, f"cannot find the taxi lane's {key} line in demo.toml")
    return text


class World:
    """The simulated cab and lanegated, started from the derived demo config."""

    def __init__(self, bin_dir, source_dir, workdir, procs):
        self.bin_dir, self.source_dir, self.workdir, self.procs = bin_dir, source_dir, workdir, procs
        self.pki = os.path.join(workdir, "pki")

    def start(self):
        sim = os.path.join(self.bin_dir, "lanegate-sim")
        gated = os.path.join(self.bin_dir, "lanegated")
        for exe in (sim, gated):
            if not os.access(exe, os.X_OK):
                raise EnvironmentProblem(f"{exe} is missing: build the lanegated and lanegate-sim targets")
        os.makedirs(os.path.join(self.workdir, "state"))
        r = subprocess.run([os.path.join(self.source_dir, "scripts/make-demo-pki"), self.pki],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise EnvironmentProblem(f"scripts/make-demo-pki failed:\n{r.stdout}{r.stderr}")
        with open(os.path.join(self.pki, "merchant.serial")) as f:
            serial = f.read().strip()
        with open(os.path.join(self.source_dir, "config/examples/demo.toml"), encoding="utf-8") as f:
            demo = f.read()
        text, _ = derive_config(demo, self.workdir, serial)
        text = taxi_config(text, self.workdir)
        self.config_file = os.path.join(self.workdir, "lanegate.toml")
        with open(self.config_file, "w", encoding="utf-8") as f:
            f.write(text)
        api = toml_section(text, "api")
        prov = toml_section(text, "provider")
        inv = toml_section(text, "invoicing")
        check(inv.get("enabled") == "true", "demo.toml has [invoicing] enabled = false (no claim QR)")
        scheme = "https" if "api.tls" in text else "http"
        self.api_base = f"{scheme}://127.0.0.1:{api['listen_port']}"
        self.public_base = api.get("public_base_url", self.api_base).rstrip("/")
        self.http = Http(os.path.join(self.pki, "ca.pem"))

        for key, content in (("app_secret_file", "demo-invoicing-app-secret"),
                             ("access_token_file", "demo-invoicing-access-token")):
            path = inv[key]
            if not os.path.exists(path):
                with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                    f.write(content + "\n")

        merchant = {"certificate_file": "merchant.pem", "apiv3_key_file": "apiv3.key", "products": PRODUCTS}
        if prov.get("mode") == "partner":
            merchant.update(mchid=prov["sp_mchid"], appid=prov["sp_appid"],
                            sub_merchants=[{k: v for k, v in (("sub_mchid", prov["sub_mchid"]),
                                                             ("sub_appid", prov.get("sub_appid")))
                                            if v}])
        else:
            merchant.update(mchid=prov["mchid"], appid=prov["appid"])
        seed = {"merchants": [merchant], "accounts": [], "plates": [], "etc_contracts": []}
        seed_file = os.path.join(self.workdir, "seed.json")
        with open(seed_file, "w") as f:
            json.dump(seed, f)
        admin_port = free_ports(1)[0]
        self.procs.start("provider", [sim, "provider", "--pki", self.pki, "--seed", seed_file,
                                      "--db", os.path.join(self.workdir, "provider.db"),
                                      "--port", str(port_of(prov["base_url"])),
                                      "--admin-port", str(admin_port)], r"^ready ")
        self.provider_admin = f"http://127.0.0.1:{admin_port}"

        argv = [sim, "invoicing", "--db", os.path.join(self.workdir, "invoicing.db"),
                "--port", str(port_of(inv["base_url"])),
                "--app-secret-file", inv["app_secret_file"],
                "--access-token-file", inv["access_token_file"],
                "--app-key", inv["app_key"], "--seller-tax-id", inv["seller_tax_id"]]
        if inv["base_url"].startswith("https:"):
            argv += ["--tls-cert", os.path.join(self.pki, "server.pem"),
                     "--tls-key", os.path.join(self.pki, "server.key")]
        self.procs.start("invoicing", argv, r"^ready ")

        control_port = free_ports(1)[0]
        m = self.procs.start("devices", [sim, "devices", "--config", self.config_file,
                                         "--control-port", str(control_port)],
                             r"^ready control=(http://\S+)")
        self.devices = m.group(1)

        self.procs.start("lanegated", [gated, "--config", self.config_file])

        def healthy():
            self.procs.assert_running()
            status, _ = self.http.call("GET", self.api_base + "/healthz", timeout_s=2)
            return status == 200

        wait_for("lanegated to answer /healthz", healthy, 30, 0.2)
        taxi = [b for b in tables(text, "lane") if b.get("mode") == "taxi"]
        self.taxi_lane, self.meter = taxi[0]["id"], taxi[0]["meter"]
        log(f"world up in {self.workdir}: API {self.api_base}, devices {self.devices}, "
            f"provider admin {self.provider_admin}")

    def end_trip(self, fare_fen):
        """The meter ends a trip; returns its trip number."""
        status, body = self.http.json("POST", self.devices + "/trip",
                                      {"meter": self.meter, "fare_fen": fare_fen,
                                       "payment_type": TRIP_PAYMENT_TYPE})
        check(status == 200, f"devices sim refused the trip: {status} {body}")
        return body.get("trip_number")

    def feed(self):
        st, b = self.http.json("GET", f"{self.api_base}/api/v1/screen/{self.taxi_lane}")
        check(st == 200, f"GET /api/v1/screen/{self.taxi_lane}: {st} {b}")
        return b

    def admin(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.provider_admin + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw or b"null")
            except ValueError:
                return e.code, {"raw": raw[:300].decode(errors="replace")}

    def native_order(self, fare_fen):
        """The sandbox's unpaid Native order for fare_fen: its out_trade_no."""

        def items():
            st, b = self.admin("GET", "/admin/payments")
            check(st == 200, f"provider sandbox GET /admin/payments: {st} {b}")
            return b.get("items", []) if isinstance(b, dict) else b

        def amount_of(p):
            a = p.get("amount", p.get("amount_fen", p.get("total")))
            return a.get("total") if isinstance(a, dict) else a

        def find():
            for p in items():
                kind = f"{p.get('trade_type', '')} {p.get('product', '')}".upper()
                state = str(p.get("trade_state", p.get("state", "NOTPAY"))).upper()
                if "NATIVE" in kind and amount_of(p) == fare_fen and state == "NOTPAY":
                    return p["out_trade_no"]
            return None

        return wait_for(f"an unpaid Native order of {fare_fen} fen in the provider sandbox", find, 15, 0.3)

    def pay_native(self, out_trade_no):
        st, b = self.admin("POST", "/admin/native/pay", {"out_trade_no": out_trade_no})
        check(st == 200, f"provider sandbox POST /admin/native/pay {out_trade_no}: {st} {b}")

    def receipt_of_trip(self, trip_number):
        """The operator's receipt (claim URL, human code) of the recorded trip."""

        def recorded():
            st, b = self.http.json("GET", f"{self.api_base}/api/v1/transactions?lane={self.taxi_lane}",
                                   token=OPERATOR_TOKEN)
            check(st == 200, f"GET /api/v1/transactions: {st} {b}")
            # The transaction that settled the trip (a trip may have orders that did not pay:
            # a Native order never created while the provider was down, say).
            for t in b.get("items", []):
                if (t.get("kind") == "taxi" and t.get("trip_number") == trip_number
                        and t.get("state") in ("CASH", "SUCCESS")):
                    return t
            return None

        tx = wait_for(f"lanegated to settle taxi trip {trip_number}", recorded, 20, 0.2)

        def get():
            st, b = self.http.json("GET", f"{self.api_base}/api/v1/transactions/{tx['out_trade_no']}/receipt",
                                   token=OPERATOR_TOKEN)
            if st == 404:
                return None  # the claim is created at settlement
            check(st == 200, f"operator receipt route: {st} {b}")
            return b

        return tx, wait_for(f"the receipt of trip {trip_number}", get, 15, 0.2)


def contrast(fg, bg):
    """WCAG contrast ratio of two CSS rgb()/rgba() colours."""

    def lum(css):
        parts = [float(x) for x in re.findall(r"[\d.]+", css)[:3]]
        c = [p / 255 for p in parts]
        c = [x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]

    a, b = sorted((lum(fg), lum(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)


class Browser:
    """Chromium showing one page at the passenger display's size."""

    def __init__(self, workdir, pki, artifacts, procs):
        try:
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
        except ImportError as e:
            raise EnvironmentProblem(f"python3-selenium is missing ({e}): run scripts/install-deps")
        for exe in (CHROMIUM, CHROMEDRIVER):
            if not os.access(exe, os.X_OK):
                raise EnvironmentProblem(f"{exe} is missing: run scripts/install-deps "
                                         "(packages chromium, chromium-driver)")
        self.artifacts = artifacts
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--no-first-run", "--disable-breakpad",
                  "--hide-scrollbars", "--lang=zh-CN",
                  f"--user-data-dir={os.path.join(workdir, 'chromium-profile')}",
                  f"--window-size={SCREEN['width']},{SCREEN['height']}",
                  "--ignore-certificate-errors-spki-list=" + spki_pin(os.path.join(pki, "server.pem"))):
            opts.add_argument(a)
        opts.add_experimental_option("prefs", {"intl.accept_languages": "zh-CN,zh"})
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(CHROMEDRIVER, log_path=os.path.join(workdir, "chromedriver.log"),
                          popen_kw={"start_new_session": True, "preexec_fn": _die_with_parent})
        self.service = service
        real_start = service.start

        def start_guarded():
            real_start()
            procs.guard(service.process.pid)

        service.start = start_guarded
        try:
            self.driver = webdriver.Chrome(service=service, options=opts)
        except Exception as e:
            self._kill_service()
            raise EnvironmentProblem(f"cannot start Chromium through chromedriver: {e}")
        self.driver.set_page_load_timeout(20)
        self.driver.set_script_timeout(10)
        # The kiosk's viewport exactly (the window size includes no browser chrome in
        # headless mode, but this makes it independent of that).
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": SCREEN["width"], "height": SCREEN["height"], "deviceScaleFactor": 1, "mobile": False})
        self.console = []

    def _kill_service(self):
        proc = getattr(self.service, "process", None)
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self):
        try:
            self.driver.quit()
        except Exception:
            pass
        self._kill_service()

    def el(self, css):
        return self.driver.find_element("css selector", css)

    def visible(self, css):
        els = self.driver.find_elements("css selector", css)
        return bool(els) and els[0].is_displayed()

    def text(self, css):
        return self.el(css).text.strip()

    def phase(self):
        return self.driver.execute_script("return document.body.dataset.phase || ''")

    def wait_phase(self, want, timeout_s, also=None):
        """Waits for the page to show phase `want`; fails at once on a phase in `also`
        that is not an acceptable step on the way (None: any phase may come first)."""

        def shown():
            p = self.phase()
            if also is not None and p not in also and p != want:
                raise TestFailure(f"the screen showed {p!r} while waiting for {want!r} "
                                  f"(headline {self.text('#headline')!r}, hint {self.text('#hint')!r})")
            return p == want

        wait_for(f"the screen to show {want!r}", shown, timeout_s, 0.1)

    def drain_console(self):
        entries = self.driver.get_log("browser")
        self.console.extend(entries)
        return entries

    def console_errors(self, allowed):
        self.drain_console()
        return [e for e in self.console if e.get("level") == "SEVERE"
                and not any(re.search(a, e.get("message", "")) for a in allowed)]

    def screenshot(self, name):
        path = os.path.join(self.artifacts, name)
        self.driver.get_screenshot_as_file(path)
        log(f"screenshot: {path}")
        return path

    def assert_legible(self, view):
        """Fits the screen without scrolling, the fare in large type, dark-on-light text
        and the bar's text with at least 7:1 contrast (WCAG AAA), the QR (if any) whole
        on screen and at least half the screen's height."""
        m = self.driver.execute_script("""
          var d = document.documentElement, css = function (id, p) {
            return getComputedStyle(document.getElementById(id))[p]; };
          var qr = document.getElementById('qr'), r = qr.getBoundingClientRect();
          var box = document.getElementById('qrbox');
          return {sw: d.scrollWidth, sh: d.scrollHeight, w: innerWidth, h: innerHeight,
                  amount: document.getElementById('amount').textContent,
                  amountPx: parseFloat(css('amount', 'fontSize')),
                  headPx: parseFloat(css('headline', 'fontSize')),
                  amountFg: css('amount', 'color'), bodyBg: getComputedStyle(document.body).backgroundColor,
                  headFg: css('headline', 'color'), barBg: css('bar', 'backgroundColor'),
                  qrShown: getComputedStyle(box).display !== 'none',
                  qr: {left: r.left, top: r.top, right: r.right, bottom: r.bottom, w: r.width, h: r.height,
                       loaded: qr.complete && qr.naturalWidth > 0}};""")
        check(m["sw"] <= m["w"] and m["sh"] <= m["h"],
              f"{view}: the page is {m['sw']}x{m['sh']} on a {m['w']}x{m['h']} screen (it would scroll)")
        check(m["headPx"] >= 32, f"{view}: the headline is {m['headPx']} px, too small to read from the back seat")
        if m["amount"]:
            check(m["amountPx"] >= 48, f"{view}: the fare is {m['amountPx']} px, too small to read")
        c1, c2 = contrast(m["amountFg"], m["bodyBg"]), contrast(m["headFg"], m["barBg"])
        check(c1 >= 7 and c2 >= 7, f"{view}: contrast too low for sunlight: fare {c1:.1f}:1, bar {c2:.1f}:1")
        if m["qrShown"]:
            q = m["qr"]
            check(q["loaded"], f"{view}: the QR image did not load")
            check(q["left"] >= 0 and q["top"] >= 0 and q["right"] <= m["w"] + 0.5 and q["bottom"] <= m["h"] + 0.5,
                  f"{view}: the QR is not wholly on screen: {q}")
            check(q["h"] >= m["h"] / 2, f"{view}: the QR is {q['h']:.0f} px high on a {m['h']} px screen")

    def qr_svg_shown(self):
        """The SVG text of the QR image the page shows ('' when none)."""
        return self.driver.execute_script("""
          var box = document.getElementById('qrbox'), src = document.getElementById('qr').getAttribute('src');
          if (getComputedStyle(box).display === 'none' || !src) { return ''; }
          var comma = src.indexOf(',');
          return src.slice(0, comma).indexOf('image/svg+xml') < 0 ? 'not svg: ' + src.slice(0, 40)
                                                               : decodeURIComponent(src.slice(comma + 1));""")

    def visible_text(self, but=()):
        return self.driver.execute_script("""
          var skip = arguments[0], out = [];
          document.querySelectorAll('#headline, #reconnect, #label, #amount, #detail, #hint, #qrcap, #code')
            .forEach(function (e) {
              if (e.offsetParent !== null && skip.indexOf(e.id) < 0) { out.push(e.textContent); } });
          return out.join(' | ');""", list(but))


# ---------------------------------------------------------------------------------------
# The scenario


SHOTS = ("screen-00-idle.png", "screen-01-fare.png", "screen-02-qr.png", "screen-03-paid.png",
         "screen-04-paid-english.png", "screen-05-offline.png", "screen-06-reconnecting.png",
         "screen-failure.png", "screen-console.log")


def run(args):
    artifacts = args.artifact_dir
    os.makedirs(artifacts, exist_ok=True)
    for old in SHOTS:
        try:
            os.remove(os.path.join(artifacts, old))
        except FileNotFoundError:
            pass
    workdir = tempfile.mkdtemp(prefix="lanegate-screen-")
    procs = Children(workdir)
    browser = None
    ok = False
    shots = []
    try:
        world = World(args.bin_dir, args.source_dir, workdir, procs)
        world.start()
        browser = Browser(workdir, world.pki, artifacts, procs)
        d = browser.driver
        lane = world.taxi_lane

        # ---- 0. before any trip: the welcome ----
        d.get(f"{world.api_base}/screen/{lane}")
        browser.wait_phase("idle", 10)
        check(browser.text("#headline") == "欢迎乘车", f"idle headline is {browser.text('#headline')!r}")
        check(d.execute_script("return document.documentElement.lang") == "zh-CN", "the screen does not start in Chinese")
        check(not browser.visible("#qrbox"), "the idle screen shows a QR")
        browser.assert_legible("idle")
        shots.append(browser.screenshot("screen-00-idle.png"))

        # ---- 1. the meter ends a trip: the fare, and the payment-code prompt ----
        fare1 = 3560
        trip1 = world.end_trip(fare1)
        browser.wait_phase("fare", 15, also={"idle"})
        check(browser.text("#amount") == "¥35.60", f"the fare shows {browser.text('#amount')!r}, the meter said 35.60")
        check("付款码" in browser.text("#hint"), f"the fare view does not ask for the payment code: {browser.text('#hint')!r}")
        check(not browser.visible("#qrbox"), "a QR shows before the code wait is over")
        shots.append(browser.screenshot("screen-01-fare.png"))
        browser.assert_legible("fare")

        # ---- 2. no code scanned: the Native QR ----
        browser.wait_phase("qr", 30, also={"fare"})
        check(browser.text("#amount") == "¥35.60", f"the QR view shows the fare {browser.text('#amount')!r}")
        check(browser.text("#headline") == "请扫码支付", f"QR headline is {browser.text('#headline')!r}")
        feed = world.feed()
        check(feed["phase"] == "qr" and feed.get("qr_svg"), f"the feed has no QR in the QR phase: {feed}")
        wait_for("the page to show the feed's payment QR", lambda: browser.qr_svg_shown() == feed["qr_svg"], 5)
        browser.assert_legible("qr")
        shots.append(browser.screenshot("screen-02-qr.png"))

        # ---- 3. the passenger pays the Native order: paid, with the claim QR ----
        out_trade_no = world.native_order(fare1)
        log(f"trip {trip1}: paying Native order {out_trade_no} in the sandbox")
        world.pay_native(out_trade_no)
        browser.wait_phase("paid", 60, also={"qr", "confirming"})
        check(browser.text("#amount") == "¥35.60", f"paid view shows {browser.text('#amount')!r}")
        check(browser.text("#headline") == "支付成功", f"paid headline is {browser.text('#headline')!r}")
        check("扫码支付" in browser.text("#detail"), f"paid view does not name the Native method: {browser.text('#detail')!r}")
        tx1, receipt1 = world.receipt_of_trip(trip1)
        feed = world.feed()
        check(feed.get("claim_url") == receipt1["claim_url"],
              f"the screen's claim URL {feed.get('claim_url')!r} is not the receipt's {receipt1['claim_url']!r}")
        check(feed.get("claim_url", "").startswith(world.public_base + "/claim/"),
              f"claim URL {feed.get('claim_url')!r} is not under {world.public_base}/claim/")
        wait_for("the page to show the receipt's claim QR",
                 lambda: feed.get("claim_qr_svg") and browser.qr_svg_shown() == feed["claim_qr_svg"], 5)
        check(receipt1["human_code"] in browser.text("#code"),
              f"the claim code shown ({browser.text('#code')!r}) is not the receipt's {receipt1['human_code']}")
        check(browser.text("#qrcap") == "扫码申请电子发票", f"claim QR caption is {browser.text('#qrcap')!r}")
        browser.assert_legible("paid")
        shots.append(browser.screenshot("screen-03-paid.png"))
        log(f"trip {trip1} paid ({tx1['out_trade_no']}, state {tx1['state']}), claim code {receipt1['human_code']}")

        # ---- 4. the English switch ----
        browser.el("#lang").click()
        wait_for("the English headline", lambda: browser.text("#headline") == "Payment successful", 5)
        check(browser.text("#lang") == "中文", "the language button should offer 中文 in English mode")
        check(d.execute_script("return document.documentElement.lang") == "en", "<html lang> is not en")
        check(browser.text("#qrcap") == "Scan to claim your e-invoice", f"caption in English is {browser.text('#qrcap')!r}")
        english = browser.visible_text()
        check(not CJK.search(english), f"Chinese text left on the English screen: {english!r}")
        check(browser.qr_svg_shown() == feed["claim_qr_svg"], "the claim QR changed with the language")
        browser.assert_legible("paid, English")
        shots.append(browser.screenshot("screen-04-paid-english.png"))

        # ---- 5. the provider is unreachable: the offline view, in Chinese again ----
        procs.stop("provider")
        fare2 = 4280
        trip2 = world.end_trip(fare2)
        browser.wait_phase("offline", 90, also={"paid", "idle", "fare", "qr", "confirming", "declined"})
        check(browser.text("#amount") == "¥42.80", f"offline view shows {browser.text('#amount')!r}, the meter said 42.80")
        check(browser.text("#headline") == "网络暂不可用",
              f"offline headline is {browser.text('#headline')!r} (a new trip starts in Chinese)")
        check("司机" in browser.text("#hint"), f"the offline view does not say to pay the driver: {browser.text('#hint')!r}")
        _, receipt2 = world.receipt_of_trip(trip2)
        feed = world.feed()
        check(feed.get("claim_url") == receipt2["claim_url"],
              f"offline claim URL {feed.get('claim_url')!r} is not trip {trip2}'s receipt {receipt2['claim_url']!r}")
        wait_for("the page to show the offline trip's claim QR",
                 lambda: feed.get("claim_qr_svg") and browser.qr_svg_shown() == feed["claim_qr_svg"], 5)
        check(receipt2["human_code"] in browser.text("#code"),
              f"offline claim code shown {browser.text('#code')!r}, receipt says {receipt2['human_code']}")
        browser.assert_legible("offline")
        shots.append(browser.screenshot("screen-05-offline.png"))

        # The console until here: no script or CSP error at all.
        errors = browser.console_errors(allowed=[])
        check(not errors, "the browser console has errors:\n" +
              "\n".join(f"  {e.get('level')} {e.get('message')}" for e in errors))
        seen = len(browser.console)

        # ---- 6. lanegated goes away: the last view stays, marked "reconnecting" ----
        procs.stop("lanegated")
        wait_for("the reconnecting mark", lambda: browser.visible("#reconnect"), 15, 0.2)
        check(browser.text("#reconnect") == "正在重连", f"reconnecting mark says {browser.text('#reconnect')!r}")
        check(browser.phase() == "offline" and browser.text("#amount") == "¥42.80",
              "the last view was not kept while the feed is unreachable")
        check(browser.qr_svg_shown() == feed["claim_qr_svg"], "the claim QR went away with the feed")
        shots.append(browser.screenshot("screen-06-reconnecting.png"))
        browser.drain_console()
        late = [e for e in browser.console[seen:] if e.get("level") == "SEVERE"
                and not re.search(r"/api/v1/screen/\S+ - Failed to load resource: net::ERR_CONNECTION_REFUSED",
                                  e.get("message", ""))]
        check(not late, "console errors other than the refused feed after lanegated stopped:\n" +
              "\n".join(f"  {e.get('message')}" for e in late))

        procs.assert_running()
        log(f"passed: idle, fare, Native QR, paid with claim {receipt1['human_code']}, English, "
            f"offline with claim {receipt2['human_code']}, reconnecting")
        log("screenshots: " + " ".join(shots))
        ok = True
        return 0
    except TestFailure as e:
        log(f"FAILED: {e}")
        return 1
    except EnvironmentProblem:
        raise
    except Exception as e:
        log(f"FAILED: unexpected {type(e).__name__}: {e}\n{traceback.format_exc()}")
        return 1
    finally:
        if browser is not None:
            try:
                if not ok:
                    browser.screenshot("screen-failure.png")
                browser.drain_console()
                with open(os.path.join(artifacts, "screen-console.log"), "w") as f:
                    for e in browser.console:
                        f.write(f"{e.get('level')} {e.get('source', '')} {e.get('message')}\n")
                if not ok:
                    for e in browser.console:
                        log(f"console: {e.get('level')} {e.get('message')}")
            except Exception:
                pass
            browser.close()
        procs.close()
        if not ok:
            for name, path in procs.logs():
                log(f"--- {name}.log (tail)\n{tail(path)}")
                try:
                    shutil.copy(path, os.path.join(artifacts, f"screen-{name}.log"))
                except OSError:
                    pass
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin-dir", default=os.environ.get("LANEGATE_BIN_DIR"))
    p.add_argument("--source-dir", default=os.environ.get("LANEGATE_SOURCE_DIR"))
    p.add_argument("--artifact-dir", default=os.environ.get("LANEGATE_ARTIFACT_DIR"))
    p.add_argument("--keep", action="store_true", help="keep the temp workdir")
    args = p.parse_args()
    if not args.bin_dir:
        print("screen_browser: --bin-dir or LANEGATE_BIN_DIR is required", file=sys.stderr)
        return 2
    args.bin_dir = os.path.abspath(args.bin_dir)
    if not args.source_dir:
        args.source_dir = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    if not args.artifact_dir:
        args.artifact_dir = os.path.join(args.bin_dir, "test-artifacts", "browser")

    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        return run(args)
    except EnvironmentProblem as e:
        log(f"FAILED (environment): {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
