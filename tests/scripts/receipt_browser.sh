#!/usr/bin/env bash
# Issue 17: the printable receipt page in a real browser (Debian's Chromium, headless, phone
# sized) against the real lanegated and simulators: a toll pass's receipt shows the trip
# and www.txffp.com / 票根 with no QR and no claim link; a parking pass's receipt shows its
# invoice-claim QR. Screenshots: $LANEGATE_ARTIFACT_DIR (default
# $LANEGATE_BIN_DIR/test-artifacts/browser). See tests/browser/receipt_browser.py.
#
# A missing browser is a failure, not a skip: scripts/install-deps installs it (make test
# runs it first), so its absence means the machine is not set up as CI expects.
set -euo pipefail
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
  echo "receipt_browser: FAILED: missing ${missing[*]}; run scripts/install-deps" >&2
  exit 1
fi

exec "$py" "$src/tests/browser/receipt_browser.py" --bin-dir "$bin" --source-dir "$src"
