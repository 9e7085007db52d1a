#!/usr/bin/env bash
# Issue #15: the taxi passenger screen in a real browser (Debian's Chromium, headless, an
# 800x480 landscape display) against the real lanegated and simulators: fare -> Native QR
# -> paid with the receipt's claim QR, English, and the offline view. Screenshots:
# $LANEGATE_ARTIFACT_DIR (default $LANEGATE_BIN_DIR/test-artifacts/browser). See
# tests/browser/screen_browser.py.
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
  echo "screen_browser: FAILED: missing ${missing[*]}; run scripts/install-deps" >&2
  exit 1
fi

exec "$py" "$src/tests/browser/screen_browser.py" --bin-dir "$bin" --source-dir "$src"
