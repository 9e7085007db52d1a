#!/usr/bin/env python3
"""Real-browser test of the printable receipt page (issue 17).

An operator opens a passenger's receipt on a phone to show or print it:
GET /api/v1/transactions/{out_trade_no}/receipt.html with the operator's token (set here
through CDP Network.setExtraHTTPHeaders, as an operator's browser extension or proxy
would). This test runs the real processes -- `lanegate-sim devices`, `lanegate-sim
provider` (seeded with one driver: a bound plate and a bound ETC contract), `lanegate-sim
invoicing` and `lanegated` with a config derived from config/examples/demo.toml (temp
workdir, free ports, fresh demo PKI) -- and in Debian's Chromium (headless, phone-sized):

  1. the driver passes the toll lane (the roadside unit's entry record, then the plate):
     the toll receipt page shows both station names, both times, the masked plate,
     www.txffp.com and 票根, and no QR and no claim link (lanegate never issues toll
     invoices; the national toll e-bill platform does);
  2. the same driver parks (entry, exit): the parking receipt page shows the invoice-claim
     QR -- the same symbol the JSON receipt route gives -- and the claim code.

Each page must fit the phone without horizontal scrolling; a screenshot of each goes to
$LANEGATE_ARTIFACT_DIR (default <bin dir>/test-artifacts/browser), named receipt-*.png.
The browser console is collected and any error (a script, a CSP violation) fails the test.

The process harness (children in their own process groups under a watchdog, free ports,
the demo config helpers, the HTTPS client trusting the demo CA, the phone-sized browser
with its console and screenshot helpers) is claim_browser.py's, imported from beside this
file. Starting the world is not: claim_browser.World seeds the provider with no driver at
all, so this file starts its own (the seed is the difference).

Usage: receipt_browser.py [--bin-dir DIR] [--source-dir DIR] [--artifact-dir DIR] [--keep]
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

sys.dont_write_bytecode = True  # no __pycache__ in the source tree from the import below
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from claim_browser import (OPERATOR_TOKEN, Browser, EnvironmentProblem, Http,  # noqa: E402
                           Processes, TestFailure, check, derive_config, free_ports, port_of,
                           tables, tail, toml_section, wait_for)

# The one driver of this test: a plate bound for parking and an ETC contract bound for tolls.
PLATE = "粤B7R2Q5"
PLATE_MASKED = "粤B***Q5"  # receipts mask plates (core/log.h mask_plate)
OPENID = "oRECEIPTBROWSER1"
CONTRACT = "wxLGreceiptbrowserETCcontract001"  # 32 characters, as WeChat's are
ENTRY_STATION = 4401001  # 广州北 in demo.toml's [[station]] and toll fares


def log(msg):
    print(f"receipt_browser: {msg}", flush=True)


def local_minute(unix_s, offset_minutes=480):
    """"2026-11-22T08:12": how receipts print a time (the gateway's utc_offset_minutes)."""
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(unix_s + offset_minutes * 60))


class World:
    """The simulated site and lanegated, from the derived demo config, with one driver."""

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
        etc = toml_section(text, "provider.etc")
        inv = toml_section(text, "invoicing")
        gw = toml_section(text, "gateway")
        check(inv.get("enabled") == "true", "demo.toml has [invoicing] enabled = false (no parking claim QR)")
        self.offset = int(gw.get("utc_offset_minutes", "480"))
        scheme = "https" if "api.tls" in text else "http"
        self.api_base = f"{scheme}://127.0.0.1:{api['listen_port']}"
        self.http = Http(os.path.join(self.pki, "ca.pem"))
        lanes = tables(text, "lane")

        def lane_of(mode):
            found = [b["id"] for b in lanes if b.get("mode") == mode]
            check(found, f"demo.toml has no {mode} lane")
            return found[0]

        self.toll_lane = lane_of("toll-exit")
        self.entry_lane = lane_of("parking-entry")
        self.exit_lane = lane_of("parking-exit")

        for key, content in (("app_secret_file", "demo-invoicing-app-secret"),
                             ("access_token_file", "demo-invoicing-access-token")):
            path = inv[key]
            if not os.path.exists(path):
                with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                    f.write(content + "\n")

        # The provider sandbox knows the driver: a plate bound for parking, an ETC contract
        # bound for tolls (bind_state as the box's [provider.etc] says), one account.
        bound = etc.get("bound_state", "BOUND")
        merchant = {"certificate_file": "merchant.pem", "apiv3_key_file": "apiv3.key",
                    "products": "PARKING,HIGHWAY"}
        contract = {"contract_id": CONTRACT, "plate_number": PLATE, "openid": OPENID,
                    "bind_state": bound}
        if prov.get("mode") == "partner":
            merchant.update(mchid=prov["sp_mchid"], appid=prov["sp_appid"],
                            contract_notify_url=prov["notify_url"],
                            sub_merchants=[{k: v for k, v in (("sub_mchid", prov["sub_mchid"]),
                                                             ("sub_appid", prov.get("sub_appid")))
                                            if v}])
            contract["sub_mchid"] = prov["sub_mchid"]
        else:
            merchant.update(mchid=prov["mchid"], appid=prov["appid"])
        seed = {"etc_bound_state": bound,
                "merchants": [merchant],
                "accounts": [{"openid": OPENID, "overdue": False}],
                "plates": [{"plate_number": PLATE, "plate_color": "BLUE", "openid": OPENID,
                            "service_state": "NORMAL",
                            "service_open_time": "2026-01-01T08:00:00+08:00"}],
                "etc_contracts": [contract]}
        seed_file = os.path.join(self.workdir, "seed.json")
        with open(seed_file, "w", encoding="utf-8") as f:
            json.dump(seed, f, ensure_ascii=False)
        admin_port = free_ports(1)[0]
        self.procs.start("provider", [sim, "provider", "--pki", self.pki, "--seed", seed_file,
                                      "--db", os.path.join(self.workdir, "provider.db"),
                                      "--port", str(port_of(prov["base_url"])),
                                      "--admin-port", str(admin_port)], r"^ready ")

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
        log(f"world up in {self.workdir}: API {self.api_base}, devices {self.devices}")

    # -- the driver ---------------------------------------------------------------------
    def device(self, path, body):
        status, b = self.http.json("POST", self.devices + path, body)
        check(status == 200, f"devices sim POST {path} {body}: {status} {b}")
        return b

    def settled(self, lane, kind, timeout_s):
        """The transaction lanegated settled (SUCCESS) for the driver at `lane`."""

        def find():
            self.procs.assert_running()
            st, b = self.http.json("GET", f"{self.api_base}/api/v1/transactions?lane={lane}",
                                   token=OPERATOR_TOKEN)
            check(st == 200, f"GET /api/v1/transactions?lane={lane}: {st} {b}")
            for t in b.get("items", []):
                if t.get("kind") == kind and t.get("plate") == PLATE:
                    check(t.get("decision") != "fallback",
                          f"the {kind} lane sent the driver to the attendant: {t}")
                    if t.get("state") == "SUCCESS":
                        return t
            return None

        return wait_for(f"a settled {kind} transaction of {PLATE} at {lane}", find, timeout_s, 0.3)

    def toll_pass(self):
        """The roadside unit reads the OBU (entered an hour ago at 广州北), the camera the
        plate; the ETC deduction settles at once. Returns (transaction, entry unix time)."""
        entry = int(time.time()) - 3600
        self.device("/roadside", {"lane": self.toll_lane, "entry_station": ENTRY_STATION,
                                  "entry_time": entry, "class": 1, "contract_id": CONTRACT})
        self.device("/vehicle", {"lane": self.toll_lane, "plate": PLATE, "colour": 0})
        tx = self.settled(self.toll_lane, "toll", 30)
        self.device("/vehicle/leave", {"lane": self.toll_lane})
        return tx, entry

    def parking_pass(self):
        self.device("/vehicle", {"lane": self.entry_lane, "plate": PLATE, "colour": 0})

        def entered():
            st, b = self.http.json("GET", f"{self.api_base}/api/v1/passages?lane={self.entry_lane}",
                                   token=OPERATOR_TOKEN)
            check(st == 200, f"GET /api/v1/passages: {st} {b}")
            return bool(b.get("passages"))

        wait_for("the entry lane to let the driver in", entered, 15, 0.2)
        self.device("/vehicle/leave", {"lane": self.entry_lane})
        time.sleep(1.5)  # a stay of a started minute: the demo lot charges it
        self.device("/vehicle", {"lane": self.exit_lane, "plate": PLATE, "colour": 0})
        tx = self.settled(self.exit_lane, "parking", 60)
        self.device("/vehicle/leave", {"lane": self.exit_lane})
        return tx

    def receipt_json(self, out_trade_no):
        def get():
            st, b = self.http.json("GET", f"{self.api_base}/api/v1/transactions/{out_trade_no}/receipt",
                                   token=OPERATOR_TOKEN)
            if st == 404:
                return None  # a claim is made in the settlement's commit; give it a moment
            check(st == 200, f"GET receipt of {out_trade_no}: {st} {b}")
            return b

        return wait_for(f"the receipt of {out_trade_no}", get, 15, 0.2)


def svg_path(svg):
    m = re.search(r'<path[^>]*\sd="([^"]+)"', svg or "")
    return m.group(1) if m else None


def run(args):
    artifacts = args.artifact_dir
    os.makedirs(artifacts, exist_ok=True)
    for old in ("receipt-toll.png", "receipt-parking.png", "receipt-failure.png", "receipt-console.log"):
        try:
            os.remove(os.path.join(artifacts, old))
        except FileNotFoundError:
            pass
    workdir = tempfile.mkdtemp(prefix="lanegate-receipt-")
    procs = Processes(workdir)
    browser = None
    ok = False
    try:
        world = World(args.bin_dir, args.source_dir, workdir, procs)
        world.start()
        toll, entry_unix = world.toll_pass()
        detail = toll.get("detail") or {}
        log(f"toll {toll['out_trade_no']}: {toll['amount']} yuan, {detail.get('entry_name')} -> "
            f"{detail.get('exit_name')}")
        check(detail.get("entry_name") == "广州北", f"the toll lane recorded entry {detail}")
        check(detail.get("exit_time"), f"the toll lane recorded no exit time: {detail}")
        toll_receipt = world.receipt_json(toll["out_trade_no"])
        check(toll_receipt.get("token") == "" and toll_receipt.get("qr_svg") == "",
              f"lanegate offers a claim for a toll: {toll_receipt}")
        parking = world.parking_pass()
        park_receipt = world.receipt_json(parking["out_trade_no"])
        check(park_receipt.get("token") and svg_path(park_receipt.get("qr_svg")),
              f"the parking receipt has no claim QR: {park_receipt}")
        log(f"parking {parking['out_trade_no']}: {parking['amount']} yuan, claim {park_receipt['claim_url']}")

        browser = Browser(workdir, world.pki, artifacts, procs)
        d = browser.driver
        # The operator's token on every request of this browser, as the route requires.
        d.execute_cdp_cmd("Network.enable", {})
        d.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                          {"headers": {"Authorization": f"Bearer {OPERATOR_TOKEN}"}})

        # ---- 1. the toll receipt: the trip and the national platform, nothing to claim ----
        d.get(f"{world.api_base}/api/v1/transactions/{toll['out_trade_no']}/receipt.html")
        wait_for("the toll receipt page", lambda: browser.visible("#receipt"), 15)
        text = browser.text("#receipt")
        exit_minute = detail["exit_time"][:16]
        for what, want in (("entry station", "广州北"), ("exit station", "深圳南"),
                           ("entry time", local_minute(entry_unix, world.offset)),
                           ("exit time", exit_minute), ("plate", PLATE_MASKED),
                           ("amount", toll["amount"]), ("platform", "www.txffp.com"),
                           ("app", "票根"), ("7th day", "第7个自然日")):
            check(want in text, f"the toll receipt page lacks the {what} {want!r}:\n{text}")
        check(PLATE not in d.page_source, "the toll receipt page shows the full plate")
        check(not d.find_elements("css selector", "svg"), "the toll receipt page shows a QR")
        check(not d.find_elements("css selector", "a"), "the toll receipt page has a link")
        check("/claim" not in d.page_source, "the toll receipt page names a claim URL")
        browser.assert_fits_phone("toll receipt")
        shot_toll = browser.screenshot("receipt-toll.png")

        # ---- 2. the parking receipt: the claim QR, as the JSON route gives it ----
        d.get(f"{world.api_base}/api/v1/transactions/{parking['out_trade_no']}/receipt.html")
        wait_for("the parking receipt page", lambda: browser.visible("#receipt"), 15)
        check(browser.visible("#qr svg"), "the parking receipt page shows no QR")
        qr = browser.el("#qr svg")
        size = qr.size
        check(size["width"] >= 120 and abs(size["width"] - size["height"]) < 2,
              f"the claim QR is {size['width']}x{size['height']} px: too small or not square to scan")
        page_path = d.execute_script("var p = document.querySelector('#qr svg path');"
                                     "return p ? p.getAttribute('d') : null;")
        check(page_path == svg_path(park_receipt["qr_svg"]),
              "the page's QR is not the claim QR of the receipt route")
        text = browser.text("#receipt")
        joined = text.replace("\n", "")
        check(park_receipt["claim_url"] in joined, f"the parking receipt lacks its claim URL:\n{text}")
        check(park_receipt["human_code"] in text, f"the parking receipt lacks its claim code:\n{text}")
        check("www.txffp.com" not in text, "the parking receipt points to the toll platform")
        browser.assert_fits_phone("parking receipt")
        shot_park = browser.screenshot("receipt-parking.png")

        # ---- the console: no script ran, nothing was blocked ----
        errors = browser.console_errors(allowed=[])
        with open(os.path.join(artifacts, "receipt-console.log"), "w") as f:
            for e in browser.console:
                f.write(f"{e.get('level')} {e.get('source', '')} {e.get('message')}\n")
        check(not errors, "the browser console has errors:\n" +
              "\n".join(f"  {e.get('level')} {e.get('message')}" for e in errors))
        procs.assert_running()
        log(f"passed: the toll receipt shows the trip and www.txffp.com without a QR; the parking "
            f"receipt shows its claim QR; screenshots {shot_toll} {shot_park}")
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
                    browser.screenshot("receipt-failure.png")
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
                    shutil.copy(path, os.path.join(artifacts, f"receipt-{name}.log"))
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
        print("receipt_browser: --bin-dir or LANEGATE_BIN_DIR is required", file=sys.stderr)
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
