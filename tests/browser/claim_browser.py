#!/usr/bin/env python3
"""Real-browser test of the invoice claim page (issue #7).

A taxi passenger scans the QR code on a receipt and claims a company invoice on a phone.
This test runs the real processes -- `lanegate-sim devices`, `lanegate-sim provider`,
`lanegate-sim invoicing` and `lanegated` with a config derived from
config/examples/demo.toml (temp workdir, free ports, fresh demo PKI) -- ends a cash taxi
trip on the simulated meter, takes the claim URL from the operator's receipt route and
then, in Debian's Chromium (headless, phone-sized, driven by chromedriver via Selenium):

  1. chooses "company", enters a title and a tax id with a wrong check character, submits:
     the inline error under the tax id names the failed rule and nothing is issued; the
     optional traveller section (passenger-transport invoice, 09) is there and collapsed;
  1b. corrects the tax id, opens the traveller section and fills it with a 10-digit ID
     number, submits: the inline error under the ID field, nothing issued;
  2. corrects the ID number and submits: the status view ends on "issued" with specific
     business 09, a 20-digit invoice number and a PDF link that the browser downloads as
     a real PDF;
  3. switches to English: the labels change;
  4. the typed claim code finds the same claim;
  5. a parking stay (entry, exit; the demo driver's plate is bound for parking): its claim
     page shows the stay period and the 06 (不动产经营租赁) note and no traveller section;
     claimed by a person it is issued as "06", in Chinese and in English.

A screenshot of each view goes to $LANEGATE_ARTIFACT_DIR (default
<bin dir>/test-artifacts/browser); their paths are printed. The browser console is
collected and any JavaScript or security (CSP) error fails the test. Every wait is
bounded; every child process is killed on exit, also on failure (and by the kernel if
this process dies: PR_SET_PDEATHSIG).

Usage: claim_browser.py [--bin-dir DIR] [--source-dir DIR] [--artifact-dir DIR] [--keep]
(defaults from $LANEGATE_BIN_DIR, $LANEGATE_SOURCE_DIR, $LANEGATE_ARTIFACT_DIR).
Exit status: 0 passed, 1 an assertion failed, 2 the environment is unusable.
"""

import argparse
import base64
import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
OPERATOR_TOKEN = "demo-operator-token"  # its SHA-256 is in demo.toml
# Phone viewport (CSS pixels) and device pixel ratio of the emulated phone.
PHONE = {"width": 390, "height": 844, "pixelRatio": 2}
CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
PLATE = "粤B3C7K9"  # the parking driver, bound for parking in the provider sandbox
TRAVELLER = {"traveller_name": "王小明", "travel_place": "深圳北站", "arrive_place": "福田区市民中心"}
TRAVELLER_ID = "44030419900101123X"  # the shape of a resident ID: 17 digits and X


class TestFailure(Exception):
    """An assertion about behaviour a user would notice failed."""


class EnvironmentProblem(Exception):
    """The machine cannot run the test (missing browser, build, ...)."""


def log(msg):
    print(f"claim_browser: {msg}", flush=True)


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def wait_for(what, fn, timeout_s, interval_s=0.2):
    """Polls fn() until it returns a truthy value; fails naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    last_error = None
    while True:
        try:
            value = fn()
            if value:
                return value
        except TestFailure:
            raise
        except Exception as e:  # the thing is not there yet; remember why
            last_error = e
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TestFailure(f"timed out after {timeout_s:g} s waiting for {what}{detail}")
        time.sleep(interval_s)


# ---------------------------------------------------------------------------------------
# Unified social credit code (GB 32100-2015), written here independently of invoice/ so
# the test does not trust the code it checks.


def credit_code_check_char(first17):
    total = sum(CREDIT_CODE_ALPHABET.index(ch) * pow(3, i, 31) for i, ch in enumerate(first17))
    c = 31 - total % 31
    return CREDIT_CODE_ALPHABET[0 if c == 31 else c]


def credit_codes():
    """A valid code and the same code with a wrong check character."""
    first17 = "91440300MA5F3K8Q2"
    good = first17 + credit_code_check_char(first17)
    wrong = next(ch for ch in "0123456789" if ch != good[-1])
    return good, first17 + wrong


# ---------------------------------------------------------------------------------------
# Processes


_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # Runs in the child between fork and exec: SIGKILL when this test process dies, so
    # no simulator or browser outlives a killed test run.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


# A separate process that outlives a killed test just long enough to kill what the test
# started: PR_SET_PDEATHSIG reaches only direct children, and Chromium's processes are
# children of chromedriver (they survive chromedriver's death). The test writes each
# child's process group id to the watchdog's stdin; at EOF -- the test closed it, or died
# -- the watchdog kills those groups; without a last "done" line (the test died) it also
# removes the test's temp workdir (argv[1]).
WATCHDOG = r"""
import os, shutil, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
groups, done = set(), False
for line in sys.stdin:
    if line.strip() == "done":
        done = True
    else:
        groups.add(int(line))
for g in groups:
    try:
        os.killpg(g, signal.SIGKILL)
    except OSError:
        pass
if not done:
    shutil.rmtree(sys.argv[1], ignore_errors=True)
"""


class Processes:
    """Children started by the test, each in its own process group; all killed on close,
    and by the watchdog if the test itself is killed."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.children = []  # (name, Popen, log path)
        self.watchdog = subprocess.Popen([sys.executable, "-c", WATCHDOG, workdir], stdin=subprocess.PIPE,
                                         start_new_session=True, text=True)

    def guard(self, pgid):
        """Puts process group `pgid` under the watchdog."""
        self.watchdog.stdin.write(f"{pgid}\n")
        self.watchdog.stdin.flush()

    def start(self, name, argv, ready_pattern=None, timeout_s=20.0):
        """Starts argv with stdout+stderr in <workdir>/<name>.log; when ready_pattern is
        given, waits (bounded) for a matching line and returns the match."""
        log_path = os.path.join(self.workdir, f"{name}.log")
        out = open(log_path, "wb")
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("JOURNAL_STREAM", None)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                env=env, start_new_session=True, preexec_fn=_die_with_parent)
        out.close()
        self.children.append((name, proc, log_path))
        self.guard(proc.pid)  # a session leader: its group id is its pid
        if ready_pattern is None:
            return None

        def ready():
            if proc.poll() is not None:
                raise TestFailure(f"{name} exited with status {proc.returncode} before it was "
                                  f"ready:\n{tail(log_path)}")
            with open(log_path, "r", errors="replace") as f:
                return re.search(ready_pattern, f.read(), re.MULTILINE)

        return wait_for(f"{name} to print /{ready_pattern}/", ready, timeout_s, 0.05)

    def assert_running(self):
        for name, proc, log_path in self.children:
            if proc.poll() is not None:
                raise TestFailure(f"{name} exited with status {proc.returncode}:\n{tail(log_path)}")

    def close(self):
        for _, proc, _ in reversed(self.children):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for _, proc, _ in self.children:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for _, proc, _ in self.children:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # also whatever it started
            except (ProcessLookupError, PermissionError):
                pass
            if proc.poll() is None:
                proc.wait(timeout=5)
        self.watchdog.stdin.write("done\n")  # the test cleans up its workdir itself
        self.watchdog.stdin.close()  # EOF: it kills any group still there, then exits
        try:
            self.watchdog.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.watchdog.kill()

    def logs(self):
        return [(name, path) for name, _, path in self.children]


def tail(path, lines=30):
    try:
        with open(path, "r", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"({path}: {e})"


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


# ---------------------------------------------------------------------------------------
# Config and world


def derive_config(text, workdir, merchant_serial):
    """demo.toml with its paths under workdir, every port mapped to a free one (the same
    port number maps to the same free port everywhere, so URLs stay consistent) and the
    merchant serial of the fresh PKI. Returns (config text, {old port: new port})."""
    text = text.replace("/tmp/lanegate-demo", workdir)
    patterns = [r"(127\.0\.0\.1:)(\d+)", r"(?m)(^\s*port\s*=\s*)(\d+)",
                r"(?m)(^\s*listen_port\s*=\s*)(\d+)"]
    old = sorted({int(m.group(2)) for p in patterns for m in re.finditer(p, text)})
    mapping = dict(zip(old, free_ports(len(old))))
    for p in patterns:
        text = re.sub(p, lambda m: m.group(1) + str(mapping[int(m.group(2))]), text)
    text = re.sub(r'merchant_serial_no = "[^"]*"', f'merchant_serial_no = "{merchant_serial}"', text)
    return text, mapping


def toml_section(text, name):
    """The key = "string" / number pairs of one [name] table (enough for this config)."""
    m = re.search(r"(?ms)^\[" + re.escape(name) + r"\]\s*$(.*?)(?=^\[)", text + "\n[")
    out = {}
    if m:
        for k, v in re.findall(r'(?m)^\s*([A-Za-z_]+)\s*=\s*("[^"]*"|[^\s#]+)', m.group(1)):
            out[k] = v[1:-1] if v.startswith('"') else v
    return out


def tables(text, name):
    """The key = "string" pairs of every [[name]] table, in order."""
    out = []
    for block in re.split(r"(?m)^(?=\[)", text):
        if block.startswith(f"[[{name}]]"):
            out.append({k: v for k, v in re.findall(r'(?m)^\s*([A-Za-z_]+)\s*=\s*"([^"]*)"', block)})
    return out


def port_of(url):
    m = re.search(r":(\d+)(/|$)", url)
    if not m:
        raise EnvironmentProblem(f"no port in {url}")
    return int(m.group(1))


class Http:
    """HTTPS (or HTTP) client that trusts exactly the demo CA."""

    def __init__(self, ca_file):
        self.ctx = ssl.create_default_context(cafile=ca_file)

    def call(self, method, url, body=None, token=None, timeout_s=10):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s, context=self.ctx) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def json(self, method, url, body=None, token=None):
        status, raw = self.call(method, url, body, token)
        try:
            return status, json.loads(raw or b"null")
        except ValueError:
            return status, {"raw": raw[:300].decode(errors="replace")}


class World:
    """The simulated site and lanegated, started from the derived demo config."""

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
        self.config_file = os.path.join(self.workdir, "lanegate.toml")
        with open(self.config_file, "w", encoding="utf-8") as f:
            f.write(text)
        api = toml_section(text, "api")
        prov = toml_section(text, "provider")
        inv = toml_section(text, "invoicing")
        check(inv.get("enabled") == "true", "demo.toml has [invoicing] enabled = false")
        self.api_base = f"https://127.0.0.1:{api['listen_port']}"
        if "api.tls" not in text:
            self.api_base = f"http://127.0.0.1:{api['listen_port']}"
        self.http = Http(os.path.join(self.pki, "ca.pem"))

        # Invoicing credentials: the files the config names, made here when the PKI
        # script does not make them (the sandbox and the gateway must share them).
        for key, content in (("app_secret_file", "demo-invoicing-app-secret"),
                             ("access_token_file", "demo-invoicing-access-token")):
            path = inv[key]
            if not os.path.exists(path):
                with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                    f.write(content + "\n")

        # The payment provider sandbox (lanegated downloads its certificates at start).
        # The box's merchant: a direct one, or (mode = "partner", as in the demo) the
        # service provider serving the box's special merchant.
        merchant = {"certificate_file": "merchant.pem", "apiv3_key_file": "apiv3.key",
                    "products": "PARKING,HIGHWAY"}
        if prov.get("mode") == "partner":
            merchant.update(mchid=prov["sp_mchid"], appid=prov["sp_appid"],
                            sub_merchants=[{k: v for k, v in (("sub_mchid", prov["sub_mchid"]),
                                                             ("sub_appid", prov.get("sub_appid")))
                                            if v}])
        else:
            merchant.update(mchid=prov["mchid"], appid=prov["appid"], products="PARKING")
        seed = {"merchants": [merchant], "accounts": [], "etc_contracts": [],
                "plates": [{"plate_number": PLATE, "plate_color": "BLUE", "openid": "oCLAIMBROWSER1",
                            "service_state": "NORMAL", "service_open_time": "2026-01-01T08:00:00+08:00"}]}
        seed_file = os.path.join(self.workdir, "seed.json")
        with open(seed_file, "w", encoding="utf-8") as f:
            json.dump(seed, f, ensure_ascii=False)
        admin_port = free_ports(1)[0]
        self.procs.start("provider", [sim, "provider", "--pki", self.pki, "--seed", seed_file,
                                      "--db", os.path.join(self.workdir, "provider.db"),
                                      "--port", str(port_of(prov["base_url"])),
                                      "--admin-port", str(admin_port)], r"^ready ")

        # The invoicing platform sandbox, over TLS with the demo server certificate when
        # the config speaks https to it.
        argv = [sim, "invoicing", "--db", os.path.join(self.workdir, "invoicing.db"),
                "--port", str(port_of(inv["base_url"])),
                "--app-secret-file", inv["app_secret_file"],
                "--access-token-file", inv["access_token_file"],
                "--app-key", inv["app_key"], "--seller-tax-id", inv["seller_tax_id"]]
        if inv["base_url"].startswith("https:"):
            argv += ["--tls-cert", os.path.join(self.pki, "server.pem"),
                     "--tls-key", os.path.join(self.pki, "server.key")]
        self.procs.start("invoicing", argv, r"^ready ")

        # The lane hardware: Modbus servers, the RS-485 line and the taxi meter's pty.
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
        check(taxi, "demo.toml has no taxi lane")
        self.taxi_lane, self.meter = taxi[0]["id"], taxi[0]["meter"]
        lanes = tables(text, "lane")
        self.entry_lane = next((b["id"] for b in lanes if b.get("mode") == "parking-entry"), None)
        self.exit_lane = next((b["id"] for b in lanes if b.get("mode") == "parking-exit"), None)
        check(self.entry_lane and self.exit_lane, "demo.toml has no parking entry and exit lane")
        log(f"world up in {self.workdir}: API {self.api_base}, devices {self.devices}")

    def taxi_trip(self, fare_fen):
        """Ends a cash trip on the meter and returns the transaction lanegated recorded."""
        status, body = self.http.json("POST", self.devices + "/trip",
                                      {"meter": self.meter, "fare_fen": fare_fen, "payment_type": 0})
        check(status == 200, f"devices sim refused the trip: {status} {body}")
        trip_number = body.get("trip_number")
        # The passenger paid the driver: the meter goes "occupied" for the next fare (0x00E7),
        # which settles the trip as paid at the meter (an online trip otherwise stays open
        # for a payment code or the screen's QR).
        status, body = self.http.json("POST", f"{self.devices}/meter/{self.meter}/start", {})
        check(status == 200, f"devices sim refused the trip start: {status} {body}")

        def recorded():
            self.procs.assert_running()
            q = f"/api/v1/transactions?lane={self.taxi_lane}" if self.taxi_lane else "/api/v1/transactions"
            st, b = self.http.json("GET", self.api_base + q, token=OPERATOR_TOKEN)
            check(st == 200, f"GET /api/v1/transactions: {st} {b}")
            for t in b.get("items", []):
                if t.get("kind") == "taxi" and t.get("trip_number") == trip_number and t.get("state") == "CASH":
                    return t
            return None

        tx = wait_for(f"lanegated to record taxi trip {trip_number} as paid at the meter", recorded, 30, 0.2)
        check(tx["state"] == "CASH", f"a cash trip should be CASH, got {tx['state']}")
        check(tx["amount_fen"] == fare_fen, f"trip recorded {tx['amount_fen']} fen, the meter said {fare_fen}")
        return tx

    def parking_stay(self):
        """The bound plate enters and leaves; returns the settled parking transaction."""

        def device(path, body):
            st, b = self.http.json("POST", self.devices + path, body)
            check(st == 200, f"devices sim POST {path} {body}: {st} {b}")

        device("/vehicle", {"lane": self.entry_lane, "plate": PLATE, "colour": 0})
        wait_for("the entry lane to let the car in", lambda: self.http.json(
            "GET", f"{self.api_base}/api/v1/passages?lane={self.entry_lane}", token=OPERATOR_TOKEN)[1]
            .get("passages"), 15)
        device("/vehicle/leave", {"lane": self.entry_lane})
        time.sleep(1.5)  # a started minute: the demo lot charges it
        device("/vehicle", {"lane": self.exit_lane, "plate": PLATE, "colour": 0})

        def settled():
            self.procs.assert_running()
            st, b = self.http.json("GET", f"{self.api_base}/api/v1/transactions?lane={self.exit_lane}",
                                   token=OPERATOR_TOKEN)
            check(st == 200, f"GET /api/v1/transactions?lane={self.exit_lane}: {st} {b}")
            return next((t for t in b.get("items", []) if t.get("kind") == "parking"
                         and t.get("plate") == PLATE and t.get("state") == "SUCCESS"), None)

        tx = wait_for(f"a settled parking transaction of {PLATE}", settled, 60, 0.3)
        device("/vehicle/leave", {"lane": self.exit_lane})
        return tx

    def receipt(self, out_trade_no):
        def get():
            st, b = self.http.json("GET", f"{self.api_base}/api/v1/transactions/{out_trade_no}/receipt",
                                   token=OPERATOR_TOKEN)
            if st == 404 and isinstance(b, dict) and "not_found" in json.dumps(b):
                return None  # the claim is created at settlement; give it a moment
            check(st == 200, f"operator receipt route: {st} {b}")
            return b

        return wait_for(f"the receipt of {out_trade_no}", get, 15, 0.2)

    def claim_view(self, token):
        st, b = self.http.json("GET", f"{self.api_base}/api/v1/claims/{token}")
        check(st == 200, f"GET /api/v1/claims/{token}: {st} {b}")
        return b


# ---------------------------------------------------------------------------------------
# Browser


def spki_pin(cert_pem):
    """base64(SHA-256(SubjectPublicKeyInfo)) of a certificate, for Chromium's
    --ignore-certificate-errors-spki-list: the browser trusts exactly the demo server key."""
    pub = subprocess.run(["openssl", "x509", "-in", cert_pem, "-pubkey", "-noout"],
                         capture_output=True, check=True, timeout=30).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         capture_output=True, check=True, timeout=30).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class Browser:
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
        self.downloads = os.path.join(workdir, "downloads")
        os.makedirs(self.downloads)
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--no-first-run", "--disable-breakpad",
                  "--lang=zh-CN",
                  f"--user-data-dir={os.path.join(workdir, 'chromium-profile')}",
                  f"--window-size={PHONE['width']},{PHONE['height']}",
                  "--ignore-certificate-errors-spki-list=" + spki_pin(os.path.join(pki, "server.pem"))):
            opts.add_argument(a)
        opts.add_experimental_option("mobileEmulation", {"deviceMetrics": {
            "width": PHONE["width"], "height": PHONE["height"], "pixelRatio": PHONE["pixelRatio"],
            "mobile": True, "touch": True}})
        opts.add_experimental_option("prefs", {
            "intl.accept_languages": "zh-CN,zh",
            "download.default_directory": self.downloads,
            "download.prompt_for_download": False,
            "plugins.always_open_pdf_externally": True,  # a PDF link downloads the file
        })
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(CHROMEDRIVER, log_path=os.path.join(workdir, "chromedriver.log"),
                          popen_kw={"start_new_session": True, "preexec_fn": _die_with_parent})
        self.service = service
        real_start = service.start

        def start_guarded():  # chromedriver (and the browser in its group) under the watchdog
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
        self.driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                                    {"behavior": "allow", "downloadPath": self.downloads})
        self.console = []  # every console entry seen so far

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
        self._kill_service()  # chromedriver's group: any browser process it left behind

    # -- helpers --------------------------------------------------------------------
    def el(self, css):
        return self.driver.find_element("css selector", css)

    def visible(self, css):
        els = self.driver.find_elements("css selector", css)
        return bool(els) and els[0].is_displayed()

    def text(self, css):
        return self.el(css).text.strip()

    def drain_console(self):
        entries = self.driver.get_log("browser")
        self.console.extend(entries)
        return entries

    def console_errors(self, allowed):
        """SEVERE entries other than those matching one of the `allowed` regexes (network
        errors the test provokes on purpose, e.g. the 422 of an invalid submission)."""
        self.drain_console()
        bad = []
        for e in self.console:
            if e.get("level") != "SEVERE":
                continue
            if any(re.search(a, e.get("message", "")) for a in allowed):
                continue
            bad.append(e)
        return bad

    def screenshot(self, name):
        """The whole page (not only the viewport) as PNG in the artifact dir."""
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": max(size["width"], PHONE["width"]),
                     "height": max(size["height"], PHONE["height"]), "scale": 1}})
        path = os.path.join(self.artifacts, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        log(f"screenshot: {path}")
        return path

    def assert_fits_phone(self, view):
        overflow = self.driver.execute_script(
            "var d = document.documentElement;"
            "return {scroll: d.scrollWidth, inner: window.innerWidth};")
        check(overflow["scroll"] <= overflow["inner"],
              f"{view}: the page is {overflow['scroll']} px wide on a {overflow['inner']} px phone "
              "screen (horizontal scrolling)")
        # Every visible control is inside the screen and at least 24 CSS px high: the
        # minimum target size of WCAG 2.2 (2.5.8), so a finger can hit it.
        bad = self.driver.execute_script("""
          var out = [];
          document.querySelectorAll('input, button, a').forEach(function (e) {
            if (e.offsetParent === null || e.type === 'radio') { return; }
            var r = e.getBoundingClientRect();
            if (r.left < 0 || r.right > window.innerWidth + 0.5 || r.height < 24) {
              out.push((e.id || e.tagName) + ' ' + Math.round(r.left) + '..' + Math.round(r.right)
                       + ' h' + Math.round(r.height));
            }
          });
          return out;""")
        check(not bad, f"{view}: controls off-screen or too small to tap on a phone: {bad}")


# ---------------------------------------------------------------------------------------
# The scenario


def run(args):
    artifacts = args.artifact_dir
    os.makedirs(artifacts, exist_ok=True)
    for old in ("01-invalid-tax-id.png", "01b-invalid-id-card.png", "02-issued.png",
                "03-issued-english.png", "04-claim-code-form.png", "05-parking.png",
                "06-parking-issued-english.png", "failure.png", "console.log"):
        try:
            os.remove(os.path.join(artifacts, old))
        except FileNotFoundError:
            pass
    workdir = tempfile.mkdtemp(prefix="lanegate-browser-")
    procs = Processes(workdir)
    browser = None
    ok = False
    try:
        world = World(args.bin_dir, args.source_dir, workdir, procs)
        world.start()

        fare_fen = 3560
        tx = world.taxi_trip(fare_fen)
        receipt = world.receipt(tx["out_trade_no"])
        claim_url, token = receipt["claim_url"], receipt["token"]
        check(claim_url.startswith(world.api_base + "/claim/"),
              f"claim_url {claim_url} is not under the gateway's public base {world.api_base}")
        check(re.fullmatch(r"[A-Za-z0-9_-]{22,}", token), f"token {token!r} is not a >=128-bit token")
        log(f"trip {tx['out_trade_no']} ({tx['amount']} yuan) -> {claim_url} "
            f"(code {receipt.get('human_code')})")

        browser = Browser(workdir, world.pki, artifacts, procs)
        d = browser.driver
        good_id, bad_id = credit_codes()

        # ---- 1. the claim form, company, wrong check character ----
        d.get(claim_url)
        wait_for("the claim form", lambda: browser.visible("#form"), 15)
        check(browser.text("h1") == "申请电子发票", f"heading is {browser.text('h1')!r}, want the Chinese page")
        check(browser.text("#amount") == "¥ 35.60", f"amount shows {browser.text('#amount')!r}, the trip was 35.60")
        check(not browser.visible("#taxrow"), "the tax id field shows before 'company' is chosen")
        # The passenger-transport (09) section: offered for this taxi trip, collapsed.
        check(world.claim_view(token).get("traveller_offered") is True,
              "the API does not offer 09 for a taxi trip of the demo site")
        check(browser.visible("#traveller"), "no traveller section on a taxi claim that offers 09")
        check(browser.text("#traveller summary") == "需要旅客运输服务发票（填写乘车人身份信息）",
              f"the traveller section is titled {browser.text('#traveller summary')!r}")
        check(not browser.el("#traveller").get_attribute("open") and not browser.visible("#traveller_card_no"),
              "the traveller section should be collapsed until the passenger opens it")
        browser.el("input[name=kind][value=company]").click()
        wait_for("the tax id field after choosing company", lambda: browser.visible("#tax_id"), 5)
        browser.el("#title").send_keys("深圳市鹏程示例科技有限公司")
        browser.el("#tax_id").send_keys(bad_id)
        browser.el("#email").send_keys("finance@example.cn")
        browser.assert_fits_phone("claim form")
        browser.el("#submit").click()
        err = wait_for("the inline tax id error", lambda: browser.text("#err-tax_id"), 10)
        check(browser.visible("#err-tax_id"), "the tax id error is set but not visible")
        # The rule, the expected and the typed character: the API's English message, or
        # the page's Chinese rendering of it.
        g, b = good_id[-1], bad_id[-1]
        check(("check character" in err and f"'{g}'" in err and f"'{b}'" in err) or
              ("校验码" in err and f"“{g}”" in err and f"“{b}”" in err),
              f"the tax id error should name the check character rule (expected {g}, got {b}), "
              f"it says: {err!r}")
        check(browser.el("#tax_id").get_attribute("aria-invalid") == "true",
              "the tax id input is not marked aria-invalid")
        check(browser.visible("#form") and not browser.visible("#status"),
              "after a rejected submission the form must stay and no status view show")
        check(browser.el("#tax_id").get_attribute("value") == bad_id,
              "the typed tax id was lost after the error")
        view = world.claim_view(token)
        check(view["state"] == "none" and "invoice" not in view,
              f"a rejected submission issued something: {view}")
        shot1 = browser.screenshot("01-invalid-tax-id.png")

        # ---- 1b. tax id corrected; the traveller section opened, a 10-digit ID number ----
        box = browser.el("#tax_id")
        box.clear()
        box.send_keys(good_id)
        browser.el("#traveller summary").click()
        wait_for("the opened traveller section", lambda: browser.visible("#traveller_card_no"), 5)
        card = browser.el("#traveller_card_no")
        check(card.get_attribute("autocomplete") == "off" and card.get_attribute("maxlength") == "18",
              "the ID number input should have autocomplete=off and maxlength=18")
        for field, value in TRAVELLER.items():
            browser.el("#" + field).send_keys(value)
        card.send_keys("4403041990")
        browser.assert_fits_phone("claim form with the traveller section open")
        browser.el("#submit").click()
        err = wait_for("the inline ID number error", lambda: browser.text("#err-traveller_card_no"), 10)
        check("居民身份证号" in err or "resident ID" in err, f"the ID number error says {err!r}")
        check(card.get_attribute("aria-invalid") == "true", "the ID number input is not marked aria-invalid")
        check(not browser.text("#err-tax_id"), "the corrected tax id still shows an error")
        check(browser.visible("#form") and not browser.visible("#status"),
              "after a rejected ID number the form must stay and no status view show")
        view = world.claim_view(token)
        check(view["state"] == "none" and "invoice" not in view,
              f"a submission with a bad ID number issued something: {view}")
        shot1b = browser.screenshot("01b-invalid-id-card.png")

        # ---- 2. corrected: issued as 09, number, PDF ----
        card.clear()
        card.send_keys(TRAVELLER_ID)
        browser.el("#submit").click()
        wait_for("the status view", lambda: browser.visible("#status"), 10)

        def issued():
            state = browser.text("#state")
            if state == "开票失败":
                raise TestFailure(f"issuing failed: {browser.text('#reason')}")
            return state == "已开具"

        wait_for("the status view to show 已开具 (issued)", issued, 60, 0.5)
        number = browser.text("#numval")
        check(re.fullmatch(r"\d{20}", number), f"invoice number {number!r} is not 20 digits")
        check(browser.visible("#number"), "the invoice number is not visible")
        buyer = browser.text("#buyer")
        check(good_id in buyer and "深圳市鹏程示例科技有限公司" in buyer,
              f"the status view shows buyer {buyer!r}, want the title and {good_id}")
        total = browser.text("#total")
        check("35.60" in total and "叁拾伍元陆角整" in total, f"total shows {total!r}")
        check(browser.visible("#pdf"), "no PDF link on the issued view")
        href = browser.el("#pdf").get_attribute("href")
        check(href and number in href, f"PDF link {href!r} does not name invoice {number}")
        check(browser.visible("#specific") and browser.text("#specval") == "09 旅客运输服务",
              f"the issued view shows specific business {browser.text('#specval')!r}, want 09")
        view = world.claim_view(token)
        check(view["state"] == "issued" and view["invoice"]["invoice_number"] == number,
              f"the API disagrees with the page: {view}")
        check(view["invoice"].get("specific_business") == "09",
              f"the invoice is not a 09 passenger-transport invoice: {view['invoice']}")
        browser.assert_fits_phone("issued view")
        shot2 = browser.screenshot("02-issued.png")

        # The link downloads a real PDF in the browser.
        browser.el("#pdf").click()

        def downloaded():
            for n in os.listdir(browser.downloads):
                p = os.path.join(browser.downloads, n)
                if not n.endswith(".crdownload") and os.path.getsize(p) > 0:
                    return p
            return None

        pdf_path = wait_for("the browser to download the PDF", downloaded, 20, 0.2)
        with open(pdf_path, "rb") as f:
            pdf = f.read()
        check(pdf.startswith(b"%PDF-"), f"the downloaded file {os.path.basename(pdf_path)} is not a PDF: "
                                        f"{pdf[:16]!r}")
        check(b"%%EOF" in pdf[-64:], "the downloaded PDF has no %%EOF trailer (truncated?)")
        shutil.copy(pdf_path, os.path.join(artifacts, f"invoice-{number}.pdf"))
        if len(d.window_handles) > 1:  # target=_blank may have opened a tab
            d.switch_to.window(d.window_handles[0])

        # ---- 3. the English switch ----
        browser.el("#lang").click()
        wait_for("the English heading", lambda: browser.text("h1") == "Request an e-invoice", 5)
        check(browser.text("#state") == "Issued", f"state in English is {browser.text('#state')!r}")
        check(browser.text("#pdf") == "Download PDF invoice", f"PDF link in English is {browser.text('#pdf')!r}")
        check(browser.text("#lang") == "中文", "the language button should offer 中文 in English mode")
        check(d.execute_script("return document.documentElement.lang") == "en", "<html lang> is not en")
        check(browser.text("#numval") == number, "the invoice number changed with the language")
        check(browser.text("#specval").startswith("09 Passenger transport"),
              f"specific business in English is {browser.text('#specval')!r}")
        browser.assert_fits_phone("issued view in English")
        shot3 = browser.screenshot("03-issued-english.png")

        # ---- 4. the typed code from the receipt finds the same claim ----
        d.get(world.api_base + "/claim")
        wait_for("the claim code form", lambda: browser.visible("#codeform"), 15)
        check(browser.text("#codesubmit") == "Find my trip", "the English choice was not remembered")
        browser.el("#code").send_keys(receipt["human_code"].lower())  # as typed on a phone
        browser.assert_fits_phone("claim code form")
        shot4 = browser.screenshot("04-claim-code-form.png")
        browser.el("#codesubmit").click()
        wait_for("the page of the typed code's claim",
                 lambda: d.current_url.endswith("/claim/" + token) and browser.visible("#status"), 15)
        wait_for("the found claim to show its issued invoice",
                 lambda: browser.text("#state") == "Issued" and browser.text("#numval") == number, 10)

        # ---- 5. a parking stay: its period, the 06 note, no traveller section; issued as 06 ----
        park = world.parking_stay()
        park_receipt = world.receipt(park["out_trade_no"])
        park_view = world.claim_view(park_receipt["token"])
        period = park_view.get("period") or {}
        check(period.get("start") and period.get("end") and not park_view.get("traveller_offered"),
              f"the parking claim should have a period and no 09 offer: {park_view}")
        d.get(park_receipt["claim_url"])
        wait_for("the parking claim form", lambda: browser.visible("#form"), 15)
        browser.el("#lang").click()  # back to Chinese
        wait_for("the Chinese heading", lambda: browser.text("h1") == "申请电子发票", 5)
        start, end = (period[k].replace("T", " ")[:16] for k in ("start", "end"))
        want = start + " – " + (end[11:] if end[:10] == start[:10] else end)
        check(browser.text("#periodrow") == "停车时段 " + want,
              f"the parking page shows {browser.text('#periodrow')!r}, want 停车时段 {want}")
        check(browser.visible("#leasenote") and "不动产经营租赁" in browser.text("#leasenote")
              and "06" in browser.text("#leasenote"), f"no 06 note: {browser.text('#leasenote')!r}")
        check(not browser.visible("#traveller"), "a parking claim shows the traveller (09) section")
        browser.el("#email").send_keys("driver@example.cn")
        browser.assert_fits_phone("parking claim form")
        shot5 = browser.screenshot("05-parking.png")
        browser.el("#submit").click()
        wait_for("the parking invoice to be issued as 06", lambda: browser.text("#state") == "已开具"
                 and browser.text("#specval") == "06 不动产经营租赁", 60, 0.5)
        browser.el("#lang").click()
        wait_for("the English parking view", lambda: browser.text("#periodrow") == "Stay " + want
                 and browser.text("#specval").startswith("06 Real-property lease"), 5)
        browser.assert_fits_phone("parking issued view in English")
        shot6 = browser.screenshot("06-parking-issued-english.png")

        # ---- the console: no script or CSP errors ----
        errors = browser.console_errors(allowed=[
            # the rejected submission: Chromium logs the 422 reply of fetch() as an error
            r"/api/v1/claims/\S+ - Failed to load resource: the server responded with a status of 422",
            # the browser's own favicon request (not the page's doing; the page has none)
            r"/favicon\.ico - Failed to load resource: the server responded with a status of 404",
        ])
        with open(os.path.join(artifacts, "console.log"), "w") as f:
            for e in browser.console:
                f.write(f"{e.get('level')} {e.get('source', '')} {e.get('message')}\n")
        check(not errors, "the browser console has errors:\n" +
              "\n".join(f"  {e.get('level')} {e.get('message')}" for e in errors))
        procs.assert_running()
        log(f"passed: invalid tax id and ID number rejected inline, invoice {number} issued as 09, "
            f"PDF downloaded ({len(pdf)} bytes), English switch works, the typed code finds the "
            f"claim, a parking stay shows its period and is issued as 06")
        log(f"screenshots: {shot1} {shot1b} {shot2} {shot3} {shot4} {shot5} {shot6}")
        ok = True
        return 0
    except TestFailure as e:
        log(f"FAILED: {e}")
        return 1
    except EnvironmentProblem:
        raise
    except Exception as e:  # a driver or protocol error is a failure too, with its trace
        log(f"FAILED: unexpected {type(e).__name__}: {e}\n{traceback.format_exc()}")
        return 1
    finally:
        if browser is not None:
            if not ok:
                try:
                    browser.screenshot("failure.png")
                    browser.drain_console()
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
                    shutil.copy(path, os.path.join(artifacts, f"{name}.log"))
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
        print("claim_browser: --bin-dir or LANEGATE_BIN_DIR is required", file=sys.stderr)
        return 2
    args.bin_dir = os.path.abspath(args.bin_dir)
    if not args.source_dir:
        args.source_dir = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    if not args.artifact_dir:
        args.artifact_dir = os.path.join(args.bin_dir, "test-artifacts", "browser")

    def stop(signum, _frame):
        raise SystemExit(128 + signum)  # runs the finally blocks: children are killed

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        return run(args)
    except EnvironmentProblem as e:
        log(f"FAILED (environment): {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
