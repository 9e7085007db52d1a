#!/usr/bin/env bash
# Runs one browser test, tests/browser/<name>.py, in a real browser (Debian's Chromium,
# headless, phone sized) against the real lanegated and simulators. ctest registers one
# test per tests/browser/*_browser.py (script.<name>); what each checks is in its header:
#   claim_browser   the invoice claim page, every state, English switch, PDF download
#   screen_browser  the taxi passenger screen (800x480): fare, Native QR, paid, offline
#   receipt_browser the printable receipt of a toll pass (trip, www.txffp.com / 票根, no QR)
#                   and of a parking pass (its claim QR)
# Screenshots: $LANEGATE_ARTIFACT_DIR (default $LANEGATE_BIN_DIR/test-artifacts/browser).
#
# A missing browser is a failure, not a skip: scripts/install-deps installs it (make test
# runs it first), so its absence means the machine is not set up as CI expects.
set -euo pipefail
name=${1:?usage: run.sh NAME (a tests/browser/NAME.py)}
bin=${LANEGATE_BIN_DIR:?}
src=${LANEGATE_SOURCE_DIR:?}

missing=()
for exe in /usr/bin/chromium /usr/bin/chromedriver; do
  [[ -x $exe ]] || missing+=("$exe")
done
# Debian's python3 (python3-selenium lives in its dist-packages, not in other pythons).
py=/usr/bin/python3
if ! "$py" -c 'import selenium' 2>/dev/null; then
  missing+=("python3-selenium")
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "$name: FAILED: missing ${missing[*]}; run scripts/install-deps" >&2
  exit 1
fi

exec "$py" "$src/tests/browser/$name.py" --bin-dir "$bin" --source-dir "$src"
