#!/usr/bin/env bash
# Handover against a restart, N miners (default 19000), each program in its
# own process: bench/handover.sh [N]. Prints the handover's log lines and
# the time until every miner is back after a restart.
set -euo pipefail
N=${1:-19000}
cd "$(dirname "$0")/.."
T=$(mktemp -d)
go build -o "$T/switchyard" ./cmd/switchyard
go build -o "$T/stratumsim" ./cmd/stratumsim
cat > "$T/sy.toml" <<TOML
[server]
listen = "127.0.0.1:23333"
max_submits_per_second = 0
[difficulty]
initial = 1e-7
min = 1e-7
max = 1e-7
[metrics]
listen = "127.0.0.1:29333"
[log]
format = "json"
[[pool]]
name = "p"
url = "stratum+tcp://127.0.0.1:23334"
user = "acct.farm"
TOML
"$T/stratumsim" pool -listen 127.0.0.1:23334 -profile= -diff 1e-7 -en2 4 -job-interval 30s >"$T/pool.log" 2>&1 &
POOL=$!
trap 'kill $POOL $A $B $F 2>/dev/null || true; echo "logs: $T"' EXIT
sleep 0.5
"$T/switchyard" run -config "$T/sy.toml" -handover 2>"$T/a.log" & A=$!
sleep 1
"$T/stratumsim" miners -connect 127.0.0.1:23333 -n "$N" -rate 0.2 -ramp 10s -report 1s >"$T/fleet.log" 2>&1 & F=$!
connected() { curl -s 127.0.0.1:29333/api/v1/status | python3 -c 'import json,sys; print(json.load(sys.stdin)["miners"]["connected"])' 2>/dev/null || echo 0; }
until [ "$(connected)" -ge "$N" ]; do sleep 0.5; done
sleep 5
echo "== handover of $N miners"
"$T/switchyard" run -config "$T/sy.toml" -takeover 2>"$T/b.log" & B=$!
wait $A || true
grep -h '"handover done\|"takeover done\|takeover: pools live' "$T/a.log" "$T/b.log" || { tail -5 "$T/a.log" "$T/b.log"; exit 1; }
sleep 5
echo "connected on B: $(connected)"
tail -n 2 "$T/fleet.log"
echo "== restart the old way (SIGTERM, start again)"
kill -TERM $B; wait $B || true
t0=$(date +%s.%N)
"$T/switchyard" run -config "$T/sy.toml" 2>"$T/c.log" & B=$!
until [ "$(connected)" -ge "$N" ]; do sleep 0.2; done
t1=$(date +%s.%N)
echo "every miner back after a restart: $(echo "$t1 - $t0" | bc) s"
sleep 2
tail -n 2 "$T/fleet.log"
