#!/usr/bin/env bash
# The fleet's system of record as an operator runs it (scripts/fleet-cluster): 3 etcd + 3
# Patroni/PostgreSQL 15 nodes on loopback come up with one command, under 1 GB, as their own
# user, with a synchronous standby. A writer commits numbered rows through the multi-host
# connection string while the primary is SIGKILLed: every commit PostgreSQL acknowledged is
# on the new primary (synchronous replication lost none), writes resume on their own, the old
# primary rejoins as a replica, and no password shows in any process's arguments. The single
# quick-start PostgreSQL takes a row too.
set -euo pipefail
src=${LANEGATE_SOURCE_DIR:?}
cluster=$src/scripts/fleet-cluster
if [[ $(id -u) -ne 0 ]]; then
  echo "fleet_cluster: needs root (it runs PostgreSQL as the postgres user, as on a server)"
  exit 1
fi
export LANEGATE_FLEET_DIR
LANEGATE_FLEET_DIR=$(mktemp -d /var/tmp/lanegate-fleet-test.XXXXXX)
export LANEGATE_FLEET_PORT=$((27000 + (RANDOM % 50) * 40))
work=$(mktemp -d)
cleanup() {
  "$cluster" destroy >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for f in "$LANEGATE_FLEET_DIR"/log/*.log; do
    echo "--- $f"; tail -20 "$f"
  done
  exit 1
}

start=$(date +%s.%N)
"$cluster" start >"$work/start.out" 2>&1 || { cat "$work/start.out"; fail "start"; }
echo "cluster up in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}') s"
cat "$work/start.out"
dsn=$("$cluster" dsn)

# Three members, one leader and one synchronous standby; memory under 1 GB.
status=$("$cluster" status)
echo "$status"
[[ $(grep -c '| Leader ' <<<"$status") == 1 ]] || fail "not one leader"
[[ $(grep -c '| Sync Standby ' <<<"$status") == 1 ]] || fail "no synchronous standby"
mb=$(sed -n 's/^memory: \([0-9]*\) MB/\1/p' <<<"$status")
((mb > 0 && mb < 1024)) || fail "the cluster uses ${mb} MB (limit 1024)"

# PostgreSQL, Patroni and etcd run as postgres, never as root.
for f in "$LANEGATE_FLEET_DIR"/{etcd,pg}{0,1,2}.pid; do
  u=$(ps -o user= -p "$(cat "$f")")
  [[ $u == postgres ]] || fail "$(basename "$f" .pid) runs as '$u'"
done
sync=$(psql -X -tA "$dsn" -c "SHOW synchronous_standby_names")
[[ -n $sync ]] || fail "synchronous_standby_names is empty on the primary"

psql -X -q "$dsn" -c "CREATE TABLE drill (i integer PRIMARY KEY, at timestamptz DEFAULT now())"

# The writer: one connection per row, as a client that reconnects after every failure; a row
# is "acknowledged" only when psql reported its commit.
writer() {
  local i=1
  while [[ ! -f $work/stop ]]; do
    if psql -X -q "$dsn" -c "INSERT INTO drill (i) VALUES ($i) ON CONFLICT DO NOTHING" 2>/dev/null; then
      echo "$i $(date +%s.%N)" >>"$work/acked"
      i=$((i + 1))
    else
      echo "$(date +%s.%N)" >>"$work/refused"
      sleep 0.1
    fi
  done
}
writer &
writer_pid=$!
sleep 3
old=$("$cluster" kill-leader)
killed_at=$(date +%s.%N)
echo "killed the primary pg$old"
# Writes resume on their own once a replica is promoted and a synchronous standby attaches.
before=$(wc -l <"$work/acked")
for ((t = 0; t < 600; t++)); do
  now=$(wc -l <"$work/acked")
  ((now > before + 20)) && break
  sleep 0.1
done
((now > before + 20)) || fail "writes did not resume within 60 s"
sleep 2
touch "$work/stop"
wait "$writer_pid"

gap=$(awk -v k="$killed_at" '$2 > k {print $2 - k; exit}' "$work/acked")
echo "failover: first acknowledged commit ${gap} s after the kill"
new=$("$cluster" status | awk -F'|' '$4 ~ /Leader/ {gsub(/ /, "", $2); print $2}')
[[ -n $new && $new != "pg$old" ]] || fail "no new leader (status shows '$new')"

# Every acknowledged row is on the new primary; nothing appears that was never sent.
psql -X -tA "$dsn" -c "SELECT i FROM drill ORDER BY i" >"$work/stored"
acked=$(wc -l <"$work/acked")
missing=$(comm -23 <(awk '{print $1}' "$work/acked" | sort) <(sort "$work/stored") | wc -l)
last=$(tail -1 "$work/acked" | awk '{print $1}')
extra=$(awk -v l="$last" '$1 > l + 1' "$work/stored" | wc -l)
echo "acknowledged $acked rows, stored $(wc -l <"$work/stored"), missing $missing"
((missing == 0)) || fail "$missing acknowledged commits are lost after the failover"
((extra == 0)) || fail "rows beyond what the writer sent"

# The old primary comes back as a replica of the new one (pg_rewind when it is ahead).
"$cluster" start-node "$old"
for ((t = 0; t < 600; t++)); do
  st=$("$cluster" status 2>/dev/null || true)
  if grep -Eq "\| pg$old .*\| (Replica|Sync Standby) +\| (running|streaming) " <<<"$st"; then
    break
  fi
  sleep 0.2
done
grep -Eq "\| pg$old .*\| (Replica|Sync Standby) +\| (running|streaming) " <<<"$st" ||
  fail "pg$old did not rejoin as a replica: $st"
echo "pg$old rejoined as a replica"

# No secret in any process's arguments or environment that ps shows.
for s in "$LANEGATE_FLEET_DIR"/secrets/*; do
  [[ -f $s && $s != *.pgpass ]] || continue
  # pgrep never matches itself (a grep of ps would find its own arguments).
  if pgrep -f -- "$(cat "$s")" >/dev/null; then fail "$(basename "$s")'s password is visible in ps"; fi
done

# The quick start: one PostgreSQL, no Patroni.
single=$("$cluster" single | sed -n 's/^fleet-cluster: dsn: //p')
[[ -n $single ]] || fail "single printed no dsn"
psql -X -q "$single" -c "CREATE TABLE one (i integer); INSERT INTO one VALUES (1)"
[[ $(psql -X -tA "$single" -c "SELECT count(*) FROM one") == 1 ]] || fail "single lost its row"
echo "single PostgreSQL up"
