#!/usr/bin/env bash
# The demo scenario with lanegated SIGKILLed at random moments and restarted: after the
# drain, every vehicle that passed has exactly one transaction at the provider sandbox
# with the right amount (the scenario's accounting fails otherwise).
set -euo pipefail
bin=${LANEGATE_BIN_DIR:?}
src=${LANEGATE_SOURCE_DIR:?}
work=$(mktemp -d /tmp/lanegate-crash-test-XXXXXX)
trap 'rm -rf "$work"' EXIT
out="$work.out"
if ! "$bin/lanegate-sim" scenario --config "$src/config/examples/demo.toml" --bin-dir "$bin" \
      --workdir "$work" --port-offset 300 --vehicles 40 --trips 5 --kill 4 --seed 7 --quiet > "$out" 2>&1; then
  cat "$out"; echo "--- lanegated.log (tail)"; tail -n 40 "$work/lanegated.log" || true
  rm -f "$out"; exit 1
fi
cat "$out"
grep -q "SIGKILLed and restarted 4 times" "$out"
grep -q "every fen accounted for" "$out"
rm -f "$out"
