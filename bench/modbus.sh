#!/usr/bin/env bash
# bench/modbus.sh — benchmark of the Modbus adapter (issue 4), run by
# `make bench` after bench/queue.sh.
#
#   1. BenchmarkCycleTCP1000 (adapters/modbus/bench_test.go): wall time, CPU
#      time and allocations of one poll cycle of a 1,000-point device over
#      Modbus TCP, against modbus-testserver (libmodbus) on loopback.
#   2. BenchmarkPlanWire100: requests and RTU bytes on the wire per cycle of
#      a 100-point energy meter per max_gap, and the cycle time at 9600 baud
#      (bytes x 11 bits / baud plus 3.5 characters of silence per frame),
#      against one read per point and the cheapest plan of any shape.
#   3. The gateway (./cmd/gateway) with one [[modbus]] block of 100 devices
#      (unit 1..100, 10 points each, interval 1s) polled over TCP from one
#      modbus-testserver serving the 100 units: VmRSS and threads every
#      second for BENCH_MODBUS_DURATION, the requests the server answered,
#      the gateway's CPU time, and whether every device went online. Then
#      the same config without the [[modbus]] block, for comparison.
#
# Progress goes to stderr, the report (markdown) to stdout. Every process it
# starts is stopped on exit. Settings (environment):
#
#   BENCH_MODBUS_BENCHTIME=1s     -benchtime of the Go benchmarks
#   BENCH_MODBUS_DEVICES=100      devices (units) of the gateway run
#   BENCH_MODBUS_DURATION=30      seconds the gateway with devices is sampled
#   BENCH_MODBUS_BASE_DURATION=10 seconds the gateway without them is sampled
#   BENCH_MODBUS_KEEP=            1 keeps the temporary directory
#
# The test server is bin/modbus-testserver (`make bin/modbus-testserver`,
# built here when missing or older than its source; needs gcc, pkg-config
# and libmodbus-dev).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCHTIME=${BENCH_MODBUS_BENCHTIME:-1s}
DEVICES=${BENCH_MODBUS_DEVICES:-100}
DURATION=${BENCH_MODBUS_DURATION:-30}
BASE_DURATION=${BENCH_MODBUS_BASE_DURATION:-10}
KEEP=${BENCH_MODBUS_KEEP:-}
export PATH="$PATH:/usr/sbin"

log() { printf '[bench-modbus %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
	log "FAILED: $*"
	exit 1
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/causeway-bench-modbus.XXXXXX")
PIDS=() # background processes, stopped in reverse order
SRV_FD_OPEN=

cleanup() {
	local rc=$? i pid
	trap - EXIT INT TERM
	if [[ -n $SRV_FD_OPEN ]]; then
		exec 3>&- # end of file on the test server's stdin: it exits
	fi
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		pid=${PIDS[i]}
		kill -0 "$pid" 2>/dev/null || continue
		kill -TERM "$pid" 2>/dev/null || true
		for _ in {1..50}; do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [[ -n $KEEP || $rc -ne 0 ]]; then
		log "kept $TMP (configs, logs, raw output)"
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget() { # forget PID: drop a finished process from PIDS
	local i
	for i in "${!PIDS[@]}"; do
		[[ ${PIDS[i]} == "$1" ]] && unset 'PIDS[i]'
	done
	PIDS=("${PIDS[@]}")
}

port_in_use() {
	if command -v ss >/dev/null 2>&1; then
		[[ -n $(ss -Htuan "sport = :$1" 2>/dev/null) ]]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}
free_port() {
	local p
	for _ in {1..200}; do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		port_in_use "$p" || {
			echo "$p"
			return
		}
	done
	die "no free port found"
}
wait_tcp() { # wait_tcp PORT PID
	for _ in {1..150}; do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

status_kib() { # status_kib PID FIELD: a field of /proc/PID/status (VmRSS, Threads)
	local k v _
	while read -r k v _; do
		if [[ $k == "$2:" ]]; then
			echo "$v"
			return
		fi
	done <"/proc/$1/status"
	echo 0
}
cpu_ticks() { # cpu_ticks PID: utime + stime in clock ticks
	local stat
	stat=$(<"/proc/$1/stat")
	stat=${stat##*) } # fields from 3 on (the name may hold spaces)
	awk '{ print $12 + $13 }' <<<"$stat"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
now_us() { echo "${EPOCHREALTIME/./}"; }
reqs() { grep -c '^REQ ' "$TMP/srv.out" || true; }

# ---------------------------------------------------------------------------
# 1 and 2: the Go benchmarks.
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
RAW=$TMP/go-bench.txt
log "go test -bench 'CycleTCP1000|PlanWire100' -benchtime $BENCHTIME ./adapters/modbus/"
if ! (cd "$ROOT" && go test -run '^$' -bench 'CycleTCP1000|PlanWire100' -benchmem -count 1 \
	-benchtime "$BENCHTIME" -timeout 10m ./adapters/modbus/) >"$RAW" 2>&1; then
	cat "$RAW" >&2
	die "go test -bench"
fi
if ! grep -q '^BenchmarkCycleTCP1000' "$RAW" || ! grep -q '^BenchmarkPlanWire100' "$RAW"; then
	cat "$RAW" >&2
	die "a benchmark line is missing"
fi

# ---------------------------------------------------------------------------
# 3: the gateway with DEVICES devices.
log "building the gateway into $TMP/bin"
mkdir -p "$TMP/bin"
(cd "$ROOT" && go build -o "$TMP/bin/gateway" ./cmd/gateway) || die "go build ./cmd/gateway"
GW=$TMP/bin/gateway

SRV=$ROOT/bin/modbus-testserver
SRC=$ROOT/internal/modbustest/server/modbus-testserver.c
if [[ ! -x $SRV || $SRC -nt $SRV ]]; then
	log "building $SRV"
	make -C "$ROOT" --no-print-directory bin/modbus-testserver >&2 || die "make bin/modbus-testserver"
fi

# Ten points a device: six float32 (volts, amps, kW...) and two uint16 at
# holding 0..13, an int32 energy counter at holding 20 (a gap of 6: one read
# with max_gap 8), a uint16 in input register 0 (a second read).
UNITS=$(seq -s, 1 "$DEVICES")
POINTS='[[modbus.device.point]]
name = "v_l1"
address = 0
type = "float32"
unit = "V"
[[modbus.device.point]]
name = "v_l2"
address = 2
type = "float32"
unit = "V"
[[modbus.device.point]]
name = "v_l3"
address = 4
type = "float32"
unit = "V"
[[modbus.device.point]]
name = "i_l1"
address = 6
type = "float32"
unit = "A"
[[modbus.device.point]]
name = "p_total"
address = 8
type = "float32"
unit = "kW"
[[modbus.device.point]]
name = "pf"
address = 10
type = "float32"
[[modbus.device.point]]
name = "state"
address = 12
[[modbus.device.point]]
name = "freq"
address = 13
scale = 0.01
unit = "Hz"
[[modbus.device.point]]
name = "energy"
address = 20
type = "int32"
unit = "kWh"
[[modbus.device.point]]
name = "temp"
table = "input"
address = 0
scale = 0.1
unit = "degC"'
MODBUS_PORT_PLACEHOLDER=@MODBUS_ADDR@
{
	echo '[[modbus]]'
	echo 'name = "meters"'
	echo "url = \"tcp://$MODBUS_PORT_PLACEHOLDER\""
	echo 'timeout = "1s"'
	for ((u = 1; u <= DEVICES; u++)); do
		printf '[[modbus.device]]\nname = "meter%03d"\nunit_id = %d\ninterval = "1s"\n%s\n' "$u" "$u" "$POINTS"
	done
} >"$TMP/modbus-block.toml"
# The registers: 230.5 V, 231 V, 229.75 V, 12.5 A, 2.875 kW, 0.96 (float32
# 0x43668000, 0x43670000, 0x4365C000, 0x41480000, 0x40380000, 0x3F75C28F),
# state 1, 50.00 Hz; 100000 + unit kWh; 20.0 to 29.9 degC.
for ((u = 1; u <= DEVICES; u++)); do
	printf '%d holding 0 17254 32768 17255 0 17253 49152 16712 0 16440 0 16245 49807 1 5000\n' "$u"
	printf '%d holding 20 1 %d\n' "$u" $((100000 + u - 65536))
	printf '%d input 0 %d\n' "$u" $((200 + u % 100))
done >"$TMP/init.txt"

# gateway_config NAME WITH_MODBUS(0|1) MODBUS_ADDR: writes $TMP/NAME.toml,
# echoes the broker port.
gateway_config() {
	local name=$1 with=$2 addr=$3 port
	port=$(free_port)
	mkdir -p "$TMP/data-$name"
	{
		printf '[gateway]\nid = "bench"\ndata_dir = "%s"\nlog_level = "info"\nstats_interval = "0s"\n\n' "$TMP/data-$name"
		printf '[broker]\nlisten = "127.0.0.1:%d"\n\n' "$port"
		if [[ $with == 1 ]]; then
			sed "s/$MODBUS_PORT_PLACEHOLDER/$addr/" "$TMP/modbus-block.toml"
		fi
	} >"$TMP/$name.toml"
	echo "$port"
}

# The test server: stdin from a fifo held open on fd 3 (it exits at end of
# file), stdout (READY, then a REQ and a REP line per request) to a file.
mkfifo "$TMP/srv.in"
"$SRV" --tcp 127.0.0.1:0 --units "$UNITS" --init "$TMP/init.txt" <"$TMP/srv.in" >"$TMP/srv.out" 2>"$TMP/srv.err" &
SRV_PID=$!
PIDS+=("$SRV_PID")
exec 3>"$TMP/srv.in"
SRV_FD_OPEN=1
SRV_ADDR=
for _ in {1..100}; do
	SRV_ADDR=$(awk '/^READY tcp / { print $3; exit }' "$TMP/srv.out")
	[[ -n $SRV_ADDR ]] && break
	kill -0 "$SRV_PID" 2>/dev/null || break
	sleep 0.1
done
[[ -n $SRV_ADDR ]] || {
	cat "$TMP/srv.err" >&2
	die "modbus-testserver did not start"
}
log "modbus-testserver pid $SRV_PID on $SRV_ADDR, units 1..$DEVICES"

# Requests per cycle of the whole block, from the gateway's own planner.
BROKER_PORT=$(gateway_config modbus 1 "$SRV_ADDR")
"$GW" modbus plan -c "$TMP/modbus.toml" >"$TMP/plan.txt" 2>&1 || {
	head -n 20 "$TMP/plan.txt" >&2
	die "gateway modbus plan"
}
REQS_PER_ROUND=$(awk '/^device .* points in [0-9]+ request/ { for (i = 1; i <= NF; i++) if ($i ~ /^request/) n += $(i - 1) } END { print n + 0 }' "$TMP/plan.txt")
((REQS_PER_ROUND > 0)) || die "no request in the plan ($TMP/plan.txt)"

# run_gateway NAME SECONDS: start the gateway with $TMP/NAME.toml (broker
# port $BROKER_PORT), sample it every second for SECONDS, stop it. Sets
# R_START R_MAX R_END (KiB), T_MIN T_MAX (threads), R_SERIES, CPU_PCT,
# REQ_START, REQ_RATE, ELAPSED.
run_gateway() {
	local name=$1 secs=$2 pid t0 t1 c0 c1 r0 r1 v th i
	"$GW" run -c "$TMP/$name.toml" >"$TMP/$name.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	if ! wait_tcp "$BROKER_PORT" "$pid"; then
		tail -n 30 "$TMP/$name.log" >&2 || true
		die "the gateway did not start ($TMP/$name.toml)"
	fi
	REQ_START=$(reqs)
	R_START=$(status_kib "$pid" VmRSS)
	t0=$(now_us)
	c0=$(cpu_ticks "$pid")
	r0=$REQ_START
	R_MAX=$R_START
	T_MIN=$(status_kib "$pid" Threads)
	T_MAX=$T_MIN
	R_SERIES=""
	for ((i = 1; i <= secs; i++)); do
		# Sleep to the next whole second since t0 (no drift).
		sleep "$(awk -v t0="$t0" -v now="$(now_us)" -v i="$i" 'BEGIN { d = (t0 + i * 1000000 - now) / 1e6; printf "%.3f", (d > 0 ? d : 0) }')"
		kill -0 "$pid" 2>/dev/null || {
			tail -n 30 "$TMP/$name.log" >&2 || true
			die "the gateway exited during the run"
		}
		v=$(status_kib "$pid" VmRSS)
		th=$(status_kib "$pid" Threads)
		((v > R_MAX)) && R_MAX=$v
		((th > T_MAX)) && T_MAX=$th
		((th < T_MIN)) && T_MIN=$th
		if ((i % 5 == 0)); then
			R_SERIES+="${R_SERIES:+, }${i}s: $(mib "$v")"
		fi
	done
	t1=$(now_us)
	c1=$(cpu_ticks "$pid")
	r1=$(reqs)
	R_END=$v
	ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')
	CPU_PCT=$(awk -v c="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" -v s="$ELAPSED" 'BEGIN { printf "%.2f", 100 * c / hz / s }')
	REQ_RATE=$(awk -v n="$((r1 - r0))" -v s="$ELAPSED" 'BEGIN { printf "%.1f", n / s }')
	kill -TERM "$pid" 2>/dev/null || true
	for _ in {1..100}; do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	forget "$pid"
}

log "gateway with $DEVICES devices ($REQS_PER_ROUND requests per round), sampled for ${DURATION}s"
run_gateway modbus "$DURATION"
M_START=$R_START M_MAX=$R_MAX M_END=$R_END M_TMIN=$T_MIN M_TMAX=$T_MAX M_SERIES=$R_SERIES
M_CPU=$CPU_PCT M_REQ_START=$REQ_START M_REQ_RATE=$REQ_RATE M_ELAPSED=$ELAPSED
M_CYCLES=$(awk -v r="$REQ_RATE" -v per="$REQS_PER_ROUND" -v d="$DEVICES" 'BEGIN { printf "%.1f", r / (per / d) }')
ONLINE=$({ grep 'device online' "$TMP/modbus.log" || true; } | grep -o 'device=[^ ]*' | sort -u | wc -l)
NOT_ANSWERING=$({ grep -c 'device not answering' "$TMP/modbus.log" || true; })
OVERRAN=$({ grep -c 'overran' "$TMP/modbus.log" || true; })
BAD_REPLIES=$({ grep '^REP ' "$TMP/srv.out" || true; } | grep -vc 'status=ok' || true)
log "  online $ONLINE/$DEVICES, $M_REQ_RATE requests/s, RSS max $(mib "$M_MAX") MiB"

BROKER_PORT=$(gateway_config base 0 "")
log "gateway without [[modbus]], sampled for ${BASE_DURATION}s"
run_gateway base "$BASE_DURATION"

# ---------------------------------------------------------------------------
# The report.
# shellcheck disable=SC2016 # awk programs, not shell
AWKLIB='
function metrics(    i) { delete m; for (i = 3; i < NF; i += 2) m[$(i + 1)] = $i }
function comma(x,    s) {
	s = sprintf("%.0f", x)
	while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s)
	return s
}
'
CPU=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)

cat <<EOF

## causeway Modbus benchmark

$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) CPUs ($CPU), $(go env GOVERSION), libmodbus $(pkg-config --modversion libmodbus 2>/dev/null || echo '?'); load average before the run: $LOAD_START.

### One poll cycle of a 1,000-point device over Modbus TCP (BenchmarkCycleTCP1000, -benchtime $BENCHTIME)

600 holding + 400 input registers (uint16, int16 × 0.1, int32/uint32/float32 in the four byte orders, 10 float64, 5 strings), max_gap 8, modbus-testserver (libmodbus) on loopback. *wall* = one cycle, server round trips included; *CPU* = user + system time of the benchmark process per cycle (the frame consumer and the garbage collector included); *B* and *allocs* per cycle (the whole process).

| cycles run | requests/cycle | wall µs/cycle | CPU µs/cycle | B/cycle | allocs/cycle | TCP bytes/cycle |
|---:|---:|---:|---:|---:|---:|---:|
EOF
awk "$AWKLIB"'
/^BenchmarkCycleTCP1000/ {
	metrics()
	printf "| %s | %.0f | %s | %s | %s | %s | %s |\n", comma($2), m["requests/cycle"], comma(m["ns/op"] / 1000),
		comma(m["cpu-us/cycle"]), comma(m["B/op"]), comma(m["allocs/op"]), comma(m["tcp-B/cycle"])
}' "$RAW"

cat <<EOF

### Bytes on the wire per cycle: a 100-point energy meter, Modbus RTU at 9600 baud (BenchmarkPlanWire100)

60 float32 in input registers (gaps of 2 to 50 registers between blocks), 20 uint16 and 10 int32 in holding registers, 10 coils. RTU bytes = request (8) + response (5 + data) per read; cycle time = bytes × 11 bits / 9600 baud + 3.5 characters of silence after each frame (CycleTimeRTU), device turnaround not counted. *fewest bytes / shortest cycle of any plan*: a dynamic program over every plan (reads of consecutive points within the protocol limit, gaps of any length) — the best the planner could do with the ideal max_gap per gap.

EOF
grep '^|' "$RAW"
awk "$AWKLIB"'
/^BenchmarkPlanWire100/ {
	metrics()
	printf "\nPlan() of the 100 points: %.1f µs, %s allocations.\n", m["ns/op"] / 1000, m["allocs/op"]
}' "$RAW"

cat <<EOF

### Gateway with $DEVICES Modbus devices over TCP (one [[modbus]] block, interval 1s, 10 points and $((REQS_PER_ROUND / DEVICES)) requests a device)

One modbus-testserver serves units 1..$DEVICES; the gateway (built-in broker, no uplink, log level info) is sampled every second (VmRSS, threads from /proc/PID/status). *at start* = the first sample, as soon as its broker port answered (the server had answered $M_REQ_START requests by then: the gateway polls from its first milliseconds, so there is no sample "before the first poll"; the row without [[modbus]] is the idle reference); *requests/s* = REQ lines of the server over the ${M_ELAPSED} s window; *cycles/s* = requests/s ÷ requests per device cycle (aim: $DEVICES, one cycle per device per second); *CPU* = the gateway's user + system time over the window, % of one core.

| gateway | devices online | requests/s | device cycles/s | CPU % | RSS at start MiB | RSS max MiB | RSS at end MiB | threads |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
| $DEVICES devices, ${DURATION} s | $ONLINE / $DEVICES | $M_REQ_RATE | $M_CYCLES | $M_CPU | $(mib "$M_START") | $(mib "$M_MAX") | $(mib "$M_END") | $M_TMIN–$M_TMAX |
| no [[modbus]] block, ${BASE_DURATION} s | – | – | – | $CPU_PCT | $(mib "$R_START") | $(mib "$R_MAX") | $(mib "$R_END") | $T_MIN–$T_MAX |

RSS with $DEVICES devices every 5 s (MiB): $M_SERIES.
Gateway log: $ONLINE devices went online, "device not answering" $NOT_ANSWERING times, "poll cycle overran" $OVERRAN times; server replies other than ok: $BAD_REPLIES.
EOF
if ((ONLINE != DEVICES)); then
	echo
	echo "**Only $ONLINE of $DEVICES devices went online** (see the gateway log, BENCH_MODBUS_KEEP=1)."
fi
log "done"
