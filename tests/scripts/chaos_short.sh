#!/usr/bin/env bash
# The chaos scenario, short (issue #9): the demo world and a real lanegated under traffic
# while every fault kind is injected at least once — SIGKILL + restart, uplink down,
# provider 5xx / latency / lost replies, notifications paused, a silent camera, a stuck
# barrier, the database's disk full, a wall-clock jump. Passes only when lanegated
# produced the operator's log line and metric for each fault, recovered from each, and
# after the drain every passage has one transaction, every settled fen is at the
# sandbox, every claimed invoice is issued and the audit ledger verifies.
# Issue 13's pairing cases ride along: toll vehicles whose plate the camera missed, whose
# roadside record is missing, or that queue while the lane decides, and a second taxi meter
# whose trips share numbers and boarding minutes with the first's. Each charge must name
# the contract or account and the fare of the vehicle or trip the simulator sent; a
# misattributed one fails the run with the vehicle's plate, contract and the charge.
# Port offset 400 (the demo tests use 200 and 300).
# The clock jumps by 240 s here, inside the provider's ±300 s signature window: lanegated
# must ride through it without a trace. scripts/chaos jumps 600 s, beyond the window; that
# run fails until lanegated stops parking charges the provider refused with SIGN_ERROR for
# a skewed timestamp (reported with issue #9: they must be retried once the clock is back).
set -euo pipefail
bin=${LANEGATE_BIN_DIR:?}
src=${LANEGATE_SOURCE_DIR:?}
work=$(mktemp -d /tmp/lanegate-chaos-test-XXXXXX)
out="$work.out"
cleanup() {
  # A tmpfs the run mounted as the state directory is gone by now; be sure.
  umount "$work/state" 2>/dev/null || true
  rm -rf "$work" "$work.out" "$work.faketime" "$work.chaos-source.toml"
}
trap cleanup EXIT
if ! "$bin/lanegate-sim" scenario --chaos --config "$src/config/examples/demo.toml" --bin-dir "$bin" \
      --workdir "$work" --port-offset 400 --duration 55 --seed "${LANEGATE_CHAOS_SEED:-9}" --clock-jump-s 240 --quiet \
      > "$out" 2>&1; then
  cat "$out"
  echo "--- lanegated.log (warnings and errors, last 60)"
  grep -E " (WARN|ERROR|NOTICE) " "$work/lanegated.log" | tail -n 60 || true
  exit 1
fi
cat "$out"
grep -q "every fault survived, every fen accounted for, the ledger verifies" "$out"
