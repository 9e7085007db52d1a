#!/usr/bin/env bash
# The shipped systemd files are valid and the service stays locked down:
# systemd-analyze verify passes, the offline security exposure is at most 2.0,
# sysusers creates the lanegate user in dialout, tmpfiles accepts its lines.
set -euo pipefail
src=${LANEGATE_SOURCE_DIR:?}
bin=${LANEGATE_BIN_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# verify needs the ExecStart binary to exist: point it at the one just built.
sed "s|^ExecStart=/usr/sbin/lanegated|ExecStart=$bin/lanegated|" "$src/systemd/lanegated.service" \
  > "$tmp/lanegated.service"
if ! out=$(systemd-analyze verify "$tmp/lanegated.service" 2>&1); then
  echo "systemd-analyze verify failed:"; echo "$out"; exit 1
fi
if [[ -n "$out" ]]; then
  echo "systemd-analyze verify printed warnings:"; echo "$out"; exit 1
fi

out=$(systemd-analyze security --offline=yes "$tmp/lanegated.service" 2>&1 || true)
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
if [[ -z "$score" ]]; then
  echo "no exposure score in:"; echo "$out"; exit 1
fi
echo "exposure: $score"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || { echo "exposure $score is above 2.0"; exit 1; }

for d in Type=notify WatchdogSec= Restart=on-failure StateDirectory=lanegate ConfigurationDirectory=lanegate \
         ProtectSystem=strict NoNewPrivileges=yes PrivateTmp=yes DevicePolicy=closed DeviceAllow=char-ttyUSB \
         SupplementaryGroups=dialout; do
  grep -q "^$d" "$src/systemd/lanegated.service" || { echo "lanegated.service lacks $d"; exit 1; }
done

mkdir -p "$tmp/root/etc"
systemd-sysusers --root="$tmp/root" "$src/systemd/lanegate.sysusers.conf" >/dev/null 2>&1
grep -q '^lanegate:' "$tmp/root/etc/passwd" || { echo "sysusers did not create lanegate"; exit 1; }
grep -q '^dialout:.*lanegate' "$tmp/root/etc/group" || { echo "lanegate is not in dialout"; exit 1; }
systemd-tmpfiles --root="$tmp/root" --create "$src/systemd/lanegate.tmpfiles.conf"
[[ -d "$tmp/root/var/lib/lanegate" ]] || { echo "tmpfiles did not create /var/lib/lanegate"; exit 1; }
echo "systemd units ok"
