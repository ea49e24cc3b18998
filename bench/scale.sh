#!/usr/bin/env bash
# Scale and latency runs for BENCHMARKS.md: a simulated pool, switchyard and
# simulated miner fleets, each in its own process, on loopback only.
#
#   bench/scale.sh load N RATE DURATION [ROUNDS]
#                                          N active miners, RATE shares/s each,
#                                          straight to the pool, then through
#                                          switchyard, ROUNDS times in turn
#   bench/scale.sh idle  N FLEETS          N idle miners through switchyard,
#                                          split over FLEETS processes and
#                                          source addresses 127.0.0.2, .3, …;
#                                          proxy RSS before/after, CPU, and
#                                          job fan-out times
#   bench/scale.sh profile N RATE SECONDS  active load through switchyard with
#                                          CPU and allocation profiles
#
# Every process it starts is stopped on exit. Wrap runs on a shared machine in
#   flock /tmp/switchyard-bench.lock timeout 600 bench/scale.sh …
# Environment: DIFF (share difficulty, pool and proxy alike; default 1e-7,
# about 430 hashes a share), OUT (work directory), BIN (binaries directory),
# BUILD=0 (use the binaries already in BIN), PROXY (switchyard's miner address).
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/switchyard-bench}
BIN=${BIN:-$OUT/bin}
DIFF=${DIFF:-1e-7}
POOL=127.0.0.1:13334
CONTROL=127.0.0.1:13390
PROXY=${PROXY:-127.0.0.1:13333}
METRICS=127.0.0.1:13393
PPROF=127.0.0.1:13360
mkdir -p "$OUT" "$BIN"

pids=() fleet_pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

build() { [ "${BUILD:-1}" = 0 ] || go build -o "$BIN/" ./cmd/switchyard ./cmd/stratumsim; }

wait_port() { # host:port
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "nothing listens on $1" >&2
	return 1
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime+stime, in clock ticks

start_pool() {
	"$BIN/stratumsim" pool -profile "" -listen "$POOL" -control "$CONTROL" -diff "$DIFF" -en1 4 -en2 8 \
		-job-interval 30s >"$OUT/pool.log" 2>&1 &
	pool_pid=$!
	pids+=("$pool_pid")
	wait_port "$POOL"
}

start_proxy() { # log level
	cat >"$OUT/switchyard.toml" <<EOF
[server]
listen = "$PROXY"
max_connections = 100000
[difficulty]
initial = $DIFF
min = $DIFF
max = $DIFF
[[pool]]
name = "sim"
url = "stratum+tcp://$POOL"
user = "bench"
[metrics]
listen = "$METRICS"
[log]
level = "$1"
format = "json"
EOF
	SWITCHYARD_PPROF=$PPROF "$BIN/switchyard" -config "$OUT/switchyard.toml" >"$OUT/switchyard.log" 2>&1 &
	proxy_pid=$!
	pids+=("$proxy_pid")
	wait_port "$PROXY"
	sleep 1 # pool session up, first job in
}

connected() { curl -s "$METRICS/metrics" | awk '/^switchyard_miners_connected / {print $2}'; }

# fleet ADDR N RATE DURATION NAME [extra flags]: one miners process, summary as JSON.
fleet() {
	local addr=$1 n=$2 rate=$3 dur=$4 name=$5
	shift 5
	"$BIN/stratumsim" miners -connect "$addr" -n "$n" -rate "$rate" -duration "$dur" \
		-ramp 5s -warmup 10s -report 0 -json "$@" >"$OUT/$name.json" 2>"$OUT/$name.log"
}

# fleet_bg: fleet in the background, in this shell, so that the pid kept
# (and stopped on exit) is the miners process itself.
fleet_bg() {
	local addr=$1 n=$2 rate=$3 dur=$4 name=$5
	shift 5
	"$BIN/stratumsim" miners -connect "$addr" -n "$n" -rate "$rate" -duration "$dur" \
		-ramp 5s -warmup 10s -report 0 -json "$@" >"$OUT/$name.json" 2>"$OUT/$name.log" &
	pids+=("$!")
	fleet_pids+=("$!")
}

summary() { # name: one line from a fleet's JSON summary (latency in µs)
	python3 - "$OUT/$1.json" "$1" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
lat = {k: round(v / 1000, 1) for k, v in s["latency"].items() if k != "Count"}
print("%-8s miners=%d ready=%d submits=%d accepted=%d rejected=%s lost=%d shares/s=%.1f latency_us=%s answers=%d" % (
    sys.argv[2], s["miners"], s["ready"], s["submits"], s["accepted"], s["rejected"] or 0, s["lost"],
    s["shares_per_second"], lat, s["latency"]["Count"]))
EOF
}

cmd=${1:-}
shift || true
case $cmd in
load)
	n=${1:-2000} rate=${2:-0.5} dur=${3:-60s} rounds=${4:-1}
	build
	start_pool
	start_proxy warn
	for r in $(seq "$rounds"); do
		fleet "$POOL" "$n" "$rate" "$dur" "direct$r"
		summary "direct$r"
		t0=$(cpu_ticks "$proxy_pid")
		fleet "$PROXY" "$n" "$rate" "$dur" "proxied$r"
		t1=$(cpu_ticks "$proxy_pid")
		summary "proxied$r"
		echo "proxy cpu: $(python3 -c "print(round(($t1 - $t0) / $(getconf CLK_TCK), 1))") s over the proxied run of $dur; rss $(rss_kib "$proxy_pid") KiB"
	done
	;;
idle)
	n=${1:-10000} fleets=${2:-2}
	build
	start_pool
	start_proxy debug
	sleep 2
	before=$(rss_kib "$proxy_pid")
	per=$((n / fleets))
	for i in $(seq "$fleets"); do
		src=127.0.0.$((2 * i)),127.0.0.$((2 * i + 1))
		fleet_bg "$PROXY" "$per" 0 10m "idle$i" -idle -source "$src" -ramp 20s
	done
	for _ in $(seq 120); do
		[ "$(connected)" = "$((per * fleets))" ] && break
		sleep 1
	done
	echo "miners connected: $(connected)"
	sleep 10
	after=$(rss_kib "$proxy_pid")
	c0=$(cpu_ticks "$proxy_pid")
	sleep 30
	c1=$(cpu_ticks "$proxy_pid")
	echo "proxy rss before=${before} KiB after=${after} KiB per miner=$(python3 -c "print(round(($after-$before)*1024/$((per * fleets))))") B"
	echo "proxy idle cpu: $(python3 -c "print(round(100*($c1-$c0)/$(getconf CLK_TCK)/30, 2))") % of one core"
	curl -s "$PPROF/debug/pprof/heap?gc=1" -o "$OUT/idle.heap"
	for _ in 1 2 3 4 5; do
		curl -s -X POST "$CONTROL/job?clean=true" >/dev/null
		sleep 2
	done
	grep '"job fanned out"' "$OUT/switchyard.log" | tail -5
	# The same with the fleets stopped (SIGSTOP): the proxy's own cost, without
	# the receiving miners competing for the CPU.
	kill -STOP "${fleet_pids[@]}"
	for _ in 1 2 3; do
		curl -s -X POST "$CONTROL/job?clean=true" >/dev/null
		sleep 2
	done
	kill -CONT "${fleet_pids[@]}"
	echo "fleets stopped while these went out:"
	grep '"job fanned out"' "$OUT/switchyard.log" | tail -3
	echo "proxy rss at the end: $(rss_kib "$proxy_pid") KiB"
	;;
profile)
	n=${1:-2000} rate=${2:-0.5} secs=${3:-30}
	build
	start_pool
	start_proxy warn
	fleet_bg "$PROXY" "$n" "$rate" "$((secs + 20))s" profiled
	sleep 15
	curl -s "$PPROF/debug/pprof/profile?seconds=$secs" -o "$OUT/cpu.pprof"
	curl -s "$PPROF/debug/pprof/allocs" -o "$OUT/allocs.pprof"
	go tool pprof -top -nodecount 25 "$BIN/switchyard" "$OUT/cpu.pprof" 2>/dev/null | head -35
	go tool pprof -sample_index=alloc_space -top -nodecount 20 "$BIN/switchyard" "$OUT/allocs.pprof" 2>/dev/null | head -30
	;;
*)
	sed -n '2,20p' "$0"
	exit 2
	;;
esac
