#!/usr/bin/env bash
# The demo scenario at a smaller size, as a user runs it: real lanegated, real Modbus,
# real HTTPS to the provider sandbox, the uplink cut and restored. Passes only when every
# fen lanegate recorded is at the provider exactly once with the same amount and state.
set -euo pipefail
bin=${LANEGATE_BIN_DIR:?}
src=${LANEGATE_SOURCE_DIR:?}
work=$(mktemp -d /tmp/lanegate-demo-test-XXXXXX)
trap 'rm -rf "$work"' EXIT
out="$work.out"
if ! "$bin/lanegate-sim" scenario --config "$src/config/examples/demo.toml" --bin-dir "$bin" \
      --workdir "$work" --port-offset 200 --vehicles 40 --trips 5 --quiet > "$out" 2>&1; then
  cat "$out"; echo "--- lanegated.log (tail)"; tail -n 40 "$work/lanegated.log" || true
  rm -f "$out"; exit 1
fi
cat "$out"
grep -q "every fen accounted for" "$out"
# The outage must have produced offline decisions or fallbacks, and online passes too.
grep -Eq "online [1-9]" "$out" || { echo "no online pass"; rm -f "$out"; exit 1; }
rm -f "$out"
