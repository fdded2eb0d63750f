#!/usr/bin/env bash
# bench/uart.sh — benchmark of the UART adapter (issue 5), run by `make bench`
# after bench/modbus.sh.
#
#   1. BenchmarkPipeline (adapters/uart/bench_test.go): frames/s through the
#      adapter's own path — framer fed with 4 KiB reads, checksum, parser, the
#      frame sent on a bridge.Bus drained by a consumer goroutine — for line +
#      regex, line + json and cobs + xor8 + binary; allocations and CPU time
#      per frame, and the share of one core the path needs at the 11,520
#      bytes/s a 115200-baud 8N1 line carries.
#   2. The gateway (./cmd/gateway) with one [[uart]] block (line + regex) on
#      one end of a socat pty pair, a writer (python3) on the other end, and
#      mosquitto_sub (QoS 1) counting the readings on the built-in broker:
#        - idle: the port open, nothing sent, BENCH_UART_IDLE seconds;
#        - 115200 baud: frames written at 11,520 bytes/s for
#          BENCH_UART_DURATION seconds, one write per frame on schedule
#          (a wakeup of the gateway per frame: the worst case);
#        - 115200 baud, batched: the same bytes, written every
#          BENCH_UART_BATCH_MS (as a USB serial adapter hands them over);
#        - max: no pacing: frames written as fast as the pty takes them, at
#          most BENCH_UART_WINDOW frames written and not yet received on MQTT
#          (the built-in broker drops messages for a subscriber with 256
#          of them not yet written to its socket: an open-loop writer ends
#          up measuring those drops, not the gateway), for
#          BENCH_UART_MAX_DURATION seconds.
#      Every frame sent must arrive on MQTT, in order per device and with the
#      values sent (the script fails otherwise). Gateway CPU time
#      (utime + stime of /proc/PID/stat) over each window, VmRSS every second.
#
# Progress goes to stderr, the report (markdown) to stdout. Every process it
# starts is stopped on exit. Settings (environment):
#
#   BENCH_UART_BENCHTIME=1s     -benchtime of the Go benchmark
#   BENCH_UART_COUNT=3          -count of the Go benchmark (the table shows the median)
#   BENCH_UART_IDLE=10          seconds the idle gateway is sampled
#   BENCH_UART_DURATION=20      seconds of writing at 115200 baud (each paced run)
#   BENCH_UART_BATCH_MS=16      write interval of the batched paced run
#   BENCH_UART_MAX_DURATION=10  seconds of writing as fast as the pty goes
#   BENCH_UART_WINDOW=240       frames in flight at most in the max run (< 256)
#   BENCH_UART_KEEP=            1 keeps the temporary directory
#
# Needs socat, python3, mosquitto_sub (mosquitto-clients).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCHTIME=${BENCH_UART_BENCHTIME:-1s}
COUNT=${BENCH_UART_COUNT:-3}
IDLE=${BENCH_UART_IDLE:-10}
DURATION=${BENCH_UART_DURATION:-20}
BATCH_MS=${BENCH_UART_BATCH_MS:-16}
MAX_DURATION=${BENCH_UART_MAX_DURATION:-10}
WINDOW=${BENCH_UART_WINDOW:-240}
KEEP=${BENCH_UART_KEEP:-}
LINE_RATE=11520 # bytes/s of 115200 baud, 8N1 (10 bits a byte)
export PATH="$PATH:/usr/sbin"

log() { printf '[bench-uart %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
	log "FAILED: $*"
	exit 1
}
for b in socat python3 mosquitto_sub; do
	command -v "$b" >/dev/null 2>&1 || die "$b not found (apt-get install socat python3 mosquitto-clients)"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/causeway-bench-uart.XXXXXX")
PIDS=() # background processes, stopped in reverse order
HOLD_OPEN=

cleanup() {
	local rc=$? i pid
	trap - EXIT INT TERM
	if [[ -n $HOLD_OPEN ]]; then
		exec 4>&-
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
		log "kept $TMP (config, logs, raw output)"
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
now_us() { echo "${EPOCHREALTIME/./}"; }
HZ=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------
# 1: the Go benchmark.
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
RAW=$TMP/go-bench.txt
log "go test -bench 'Pipeline' -benchtime $BENCHTIME -count $COUNT ./adapters/uart/"
if ! (cd "$ROOT" && go test -run '^$' -bench 'Pipeline' -benchmem -count "$COUNT" \
	-benchtime "$BENCHTIME" -timeout 10m ./adapters/uart/) >"$RAW" 2>&1; then
	cat "$RAW" >&2
	die "go test -bench"
fi
for c in line-regex line-json cobs-binary; do
	grep -q "^BenchmarkPipeline/$c" "$RAW" || {
		cat "$RAW" >&2
		die "no BenchmarkPipeline/$c line"
	}
done

# ---------------------------------------------------------------------------
# 2: the gateway on a pty pair.
log "building the gateway into $TMP/bin"
mkdir -p "$TMP/bin"
(cd "$ROOT" && go build -o "$TMP/bin/gateway" ./cmd/gateway) || die "go build ./cmd/gateway"
GW=$TMP/bin/gateway

# The peer (python3). `run` starts mosquitto_sub (the command after "--"),
# waits for the gateway's retained status (the subscription is in place),
# writes frames to the pty for SECONDS and counts the readings mosquitto_sub
# prints (copied to SUBFILE) until every frame arrived or none came for 10 s.
# Writing: RATE bytes/s on a schedule, one write per frame (BATCH_MS 0) or
# the frames due every BATCH_MS; RATE 0: as fast as the pty takes them, but
# at most WINDOW frames written and not yet received on MQTT. It samples
# the CPU time (utime + stime, clock ticks) of the gateway, of socat and of
# itself plus mosquitto_sub at the first write and when the last reading
# arrived, and prints "frames bytes write_s window_s received gateway_ticks
# socat_ticks peer_ticks". `verify SUBFILE FRAMES` checks the readings
# against the frames sent: per device, in order, value by value; it prints
# "received bad other".
cat >"$TMP/peer.py" <<'PY'
import json, os, subprocess, sys, threading, time

ROOMS = ["kitchen", "bedroom", "garage", "attic", "cellar", "office", "bathroom", "hall"]
N = 4096

def frame(i):
    t = i * 37 % 401 - 50  # -5.0 .. 35.0 degC, in tenths
    h = 20 + i * 13 % 71   # 20 .. 90 %
    return ROOMS[i % len(ROOMS)], t, h

LINES = [("%s T=%.1f H=%d\n" % (d, t / 10, h)).encode() for d, t, h in map(frame, range(N))]

def write_all(fd, b):
    m = memoryview(b)
    while m:
        m = m[os.write(fd, m):]

def ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime, stime

def run(pty, subfile, rate, batch_ms, window, secs, gw, socat, sub_cmd):
    with open(subfile + ".err", "wb") as err:
        proc = subprocess.Popen(sub_cmd, stdout=subprocess.PIPE, stderr=err)
    st = {"n": 0, "last": 0.0, "sent": 0, "waiting": False}
    ready, room = threading.Event(), threading.Event()
    half = max(window // 2, 1)

    def reader():
        with open(subfile, "wb") as out:
            for line in proc.stdout:
                out.write(line)
                if line.startswith(b"bench/sensors/"):
                    st["n"] += 1
                    st["last"] = time.monotonic()
                    if st["waiting"] and st["sent"] - st["n"] <= half:
                        room.set()
                elif line.startswith(b"bench/status online"):
                    ready.set()

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    if not ready.wait(10):
        proc.kill()
        sys.exit("mosquitto_sub did not receive bench/status")
    fd = os.open(pty, os.O_WRONLY | os.O_NOCTTY)
    sent = nbytes = 0
    g0, s0, p0, m0 = ticks(gw), ticks(socat), ticks(os.getpid()), ticks(proc.pid)
    t0 = time.monotonic()
    end = t0 + secs
    if rate > 0 and batch_ms > 0:
        k = 0
        while True:
            tb = t0 + k * batch_ms / 1000
            if tb >= end:
                break
            d = tb - time.monotonic()
            if d > 0:
                time.sleep(d)
            chunk = []
            while t0 + nbytes / rate <= tb:
                line = LINES[sent % N]
                chunk.append(line)
                sent += 1
                nbytes += len(line)
            if chunk:
                write_all(fd, b"".join(chunk))
            k += 1
    elif rate > 0:
        while True:
            due = t0 + nbytes / rate
            if due >= end:
                break
            d = due - time.monotonic()
            if d > 0:
                time.sleep(d)
            line = LINES[sent % N]
            write_all(fd, line)
            sent += 1
            nbytes += len(line)
    else:
        while time.monotonic() < end:
            inflight = sent - st["n"]
            if inflight > half:
                st["waiting"] = True
                room.clear()
                if st["sent"] - st["n"] > half:
                    room.wait(0.5)
                st["waiting"] = False
                continue
            k = window - inflight
            chunk = b"".join(LINES[(sent + j) % N] for j in range(k))
            write_all(fd, chunk)
            sent += k
            st["sent"] = sent
            nbytes += len(chunk)
    write_end = time.monotonic()
    st["sent"] = sent
    while st["n"] < sent and time.monotonic() - max(st["last"], write_end) < 10:
        time.sleep(0.005)
    g1, s1, p1, m1 = ticks(gw), ticks(socat), ticks(os.getpid()), ticks(proc.pid)
    t1 = max(st["last"], write_end)
    os.close(fd)
    time.sleep(0.5)  # anything beyond the frames sent would show now
    proc.terminate()
    proc.wait()
    th.join(5)
    print(sent, nbytes, "%.3f" % (write_end - t0), "%.3f" % (t1 - t0), st["n"], g1 - g0, s1 - s0, p1 - p0 + m1 - m0)

def verify(subfile, frames):
    want = {d: [] for d in ROOMS}
    for i in range(frames):
        d, t, h = frame(i % N)
        want[d].append((t, h))
    got = {d: [] for d in ROOMS}
    other = 0
    with open(subfile, encoding="utf-8") as f:
        for line in f:
            topic, _, payload = line.rstrip("\n").partition(" ")
            if topic == "bench/status":
                continue
            parts = topic.split("/")
            if len(parts) != 3 or parts[1] != "sensors" or parts[2] not in got:
                other += 1
                continue
            m = json.loads(payload)
            got[parts[2]].append((round(m["temperature"] * 10), m["humidity"]))
    received = sum(len(v) for v in got.values())
    bad = 0
    for d in ROOMS:
        w, g = want[d], got[d]
        for k in range(max(len(w), len(g))):
            if k >= len(w) or k >= len(g) or w[k] != g[k]:
                bad += 1
                if bad <= 5:
                    print("device %s reading %d: sent %s, received %s" % (d, k, w[k] if k < len(w) else None,
                          g[k] if k < len(g) else None), file=sys.stderr)
    print(received, bad, other)
    return 0 if bad == 0 and other == 0 and received == frames else 1

if __name__ == "__main__":
    a = sys.argv
    if a[1:2] == ["run"] and "--" in a:
        i = a.index("--")
        run(a[2], a[3], float(a[4]), float(a[5]), int(a[6]), float(a[7]), int(a[8]), int(a[9]), a[i + 1:])
    elif a[1:2] == ["verify"]:
        sys.exit(verify(a[2], int(a[3])))
    else:
        sys.exit("usage: peer.py run PTY SUBFILE RATE BATCH_MS WINDOW SECONDS GW_PID SOCAT_PID -- SUBSCRIBER... | verify SUBFILE FRAMES")
PY
# The average frame (17 to 21 bytes with its "\n").
FRAME_B=$(cd "$TMP" && python3 -c 'import peer; print("%.2f" % (sum(map(len, peer.LINES)) / peer.N))')

# The pty pair: the gateway opens $TMP/a, the writer $TMP/b. The script
# keeps $TMP/b open (fd 4) so that socat never sees that end closed between
# two writers.
socat -d -d "pty,raw,echo=0,link=$TMP/a" "pty,raw,echo=0,link=$TMP/b" 2>"$TMP/socat.log" &
SOCAT_PID=$!
PIDS+=("$SOCAT_PID")
for _ in {1..50}; do
	[[ -e $TMP/a && -e $TMP/b ]] && break
	kill -0 "$SOCAT_PID" 2>/dev/null || break
	sleep 0.1
done
[[ -e $TMP/a && -e $TMP/b ]] || {
	cat "$TMP/socat.log" >&2
	die "socat did not create the pty pair"
}
exec 4<>"$TMP/b"
HOLD_OPEN=1
PTS_A=$(readlink -f "$TMP/a")
log "socat pid $SOCAT_PID: $TMP/a -> $PTS_A, $TMP/b -> $(readlink -f "$TMP/b")"

BROKER_PORT=$(free_port)
mkdir -p "$TMP/data"
cat >"$TMP/gateway.toml" <<EOF
[gateway]
id = "bench"
data_dir = "$TMP/data"
log_level = "warn"
stats_interval = "0s"

[broker]
listen = "127.0.0.1:$BROKER_PORT"

[[uart]]
name = "sensors"
port = "$TMP/a"
baud = 115200
framing = "line"
parser = "regex"
pattern = '^(?P<device>\w+) T=(?P<temperature>-?[\d.]+) H=(?P<humidity>\d+)$'
EOF

"$GW" run -c "$TMP/gateway.toml" >"$TMP/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
if ! wait_tcp "$BROKER_PORT" "$GW_PID"; then
	tail -n 30 "$TMP/gateway.log" >&2 || true
	die "the gateway did not start ($TMP/gateway.toml)"
fi
port_open() { # the gateway holds the pty open
	local fd
	for fd in /proc/"$GW_PID"/fd/*; do
		[[ $(readlink "$fd" 2>/dev/null) == "$PTS_A" ]] && return 0
	done
	return 1
}
for _ in {1..100}; do
	port_open && break
	sleep 0.1
done
port_open || {
	tail -n 30 "$TMP/gateway.log" >&2 || true
	die "the gateway did not open $TMP/a"
}
log "gateway pid $GW_PID, broker 127.0.0.1:$BROKER_PORT, $TMP/a open"

# run_load NAME RATE BATCH_MS SECONDS: one load run (peer.py run), then the
# check of every reading. Sets SENT SENT_B WRITE_S ELAPSED RECEIVED CPU_PCT
# CPU_TICKS SOCAT_PCT PEER_PCT RSS_MAX.
run_load() {
	local name=$1 rate=$2 batch=$3 secs=$4 ppid v out t0 socat_ticks peer_ticks
	RSS_MAX=$(status_kib "$GW_PID" VmRSS)
	python3 "$TMP/peer.py" run "$TMP/b" "$TMP/$name.sub" "$rate" "$batch" "$WINDOW" "$secs" "$GW_PID" "$SOCAT_PID" -- \
		mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -q 1 -i "bench-uart-$name" \
		-t 'bench/sensors/+' -t 'bench/status' -F '%t %p' >"$TMP/$name.out" 2>"$TMP/$name.err" &
	ppid=$!
	PIDS+=("$ppid")
	t0=$SECONDS
	while kill -0 "$ppid" 2>/dev/null; do
		sleep 1
		kill -0 "$GW_PID" 2>/dev/null || {
			tail -n 30 "$TMP/gateway.log" >&2 || true
			die "the gateway exited during the run"
		}
		v=$(status_kib "$GW_PID" VmRSS)
		((v > RSS_MAX)) && RSS_MAX=$v
		((SECONDS - t0 < secs + 60)) || die "$name: the run did not end within $((secs + 60)) s (the gateway stopped reading?)"
	done
	if ! wait "$ppid"; then
		cat "$TMP/$name.err" "$TMP/$name.sub.err" >&2 || true
		die "$name: the peer failed"
	fi
	forget "$ppid"
	read -r SENT SENT_B WRITE_S ELAPSED RECEIVED CPU_TICKS socat_ticks peer_ticks <"$TMP/$name.out"
	CPU_PCT=$(awk -v c="$CPU_TICKS" -v hz="$HZ" -v s="$ELAPSED" 'BEGIN { printf "%.2f", 100 * c / hz / s }')
	SOCAT_PCT=$(awk -v c="$socat_ticks" -v hz="$HZ" -v s="$ELAPSED" 'BEGIN { printf "%.2f", 100 * c / hz / s }')
	PEER_PCT=$(awk -v c="$peer_ticks" -v hz="$HZ" -v s="$ELAPSED" 'BEGIN { printf "%.1f", 100 * c / hz / s }')
	if ! out=$(python3 "$TMP/peer.py" verify "$TMP/$name.sub" "$SENT"); then
		log "$name: sent $SENT frames; received, bad, other topics: $out"
		tail -n 20 "$TMP/gateway.log" >&2 || true
		die "$name: the readings on MQTT are not the frames sent"
	fi
	read -r RECEIVED _ _ <<<"$out"
	((RECEIVED == SENT)) || die "$name: sent $SENT frames, received $RECEIVED"
	log "  $name: sent $SENT, received $RECEIVED in ${ELAPSED}s, gateway CPU $CPU_PCT % of one core"
}

log "idle: port open, nothing sent, ${IDLE}s"
I_RSS=$(status_kib "$GW_PID" VmRSS)
t0=$(now_us)
c0=$(cpu_ticks "$GW_PID")
sleep "$IDLE"
c1=$(cpu_ticks "$GW_PID")
t1=$(now_us)
I_EL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')
I_CPU=$(awk -v c="$((c1 - c0))" -v hz="$HZ" -v s="$I_EL" 'BEGIN { printf "%.2f", 100 * c / hz / s }')

ROWS=()
# row LABEL: a table row from the last run_load.
row() {
	ROWS+=("$(awk -v l="$1" -v hz="$HZ" -v sent="$SENT" -v b="$SENT_B" -v w="$WRITE_S" -v recv="$RECEIVED" \
		-v el="$ELAPSED" -v cpu="$CPU_PCT" -v t="$CPU_TICKS" -v soc="$SOCAT_PCT" -v peer="$PEER_PCT" -v rss="$RSS_MAX" '
function comma(x,    s) {
	s = sprintf("%.0f", x)
	while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s)
	return s
}
BEGIN {
	printf "| %s | %s | %s | %s | %.2f | %s | %.2f | %.0f | %.1f | %.1f | %.1f |", l, comma(sent), comma(b / w), comma(recv), el,
		comma(recv / el), cpu, t / hz * 1e6 / sent, soc, peer, rss / 1024
}')")
}

log "115200 baud: $LINE_RATE bytes/s for ${DURATION}s, one write per frame"
run_load paced "$LINE_RATE" 0 "$DURATION"
row "115200 baud, one write per frame, ${DURATION} s"
log "115200 baud: $LINE_RATE bytes/s for ${DURATION}s, a write every ${BATCH_MS} ms"
run_load batched "$LINE_RATE" "$BATCH_MS" "$DURATION"
row "115200 baud, a write every ${BATCH_MS} ms, ${DURATION} s"
log "max: no pacing, at most $WINDOW frames in flight, ${MAX_DURATION}s"
run_load max 0 0 "$MAX_DURATION"
row "max: no pacing, ≤ $WINDOW frames in flight, ${MAX_DURATION} s"

WARNINGS=$(grep -c 'level=WARN\|level=ERROR\|"level":"WARN"\|"level":"ERROR"' "$TMP/gateway.log" || true)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

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
VER=$(cd "$ROOT" && git describe --tags --always --dirty 2>/dev/null || echo unknown)

cat <<EOF

## causeway UART benchmark

$(date -u '+%Y-%m-%d %H:%M UTC'), commit $VER, $(nproc) CPUs ($CPU), $(go env GOVERSION), $(socat -V 2>/dev/null | awk '/socat version/ { print "socat " $3; exit }'); load average before: $LOAD_START, after: $LOAD_END.

### Adapter path: framer + checksum + parser + bus (BenchmarkPipeline, -benchtime $BENCHTIME, median of $COUNT by frames/s)

4 KiB reads fed to the framer, onFrame for each frame, the frame sent on a bridge.Bus (capacity 4,096) drained by a consumer goroutine; one op = one frame. *ns/frame* is wall time; *CPU ns/frame* is the process's user + system time (consumer and GC included). *core %* = the share of one core at 11,520 bytes/s (115200 baud, 8N1): from the measured bytes/s (wall), and from the CPU time.

| config | bytes/frame | frames/s | MB/s | ns/frame | CPU ns/frame | allocs/frame | B/frame | core % at 115200 baud (wall) | core % at 115200 baud (CPU) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
awk "$AWKLIB"'
function desc(c) {
	if (c == "line-regex") return "line + regex"
	if (c == "line-json") return "line + json"
	if (c == "cobs-binary") return "cobs + xor8 + binary (4 fields)"
	return c
}
/^BenchmarkPipeline\// {
	metrics()
	c = $1; sub(/^BenchmarkPipeline\//, "", c); sub(/-[0-9]+$/, "", c)
	if (!(c in n)) order[++nc] = c
	k = ++n[c]
	row[c, k] = $0
	fps[c, k] = m["frames/s"]
}
END {
	for (i = 1; i <= nc; i++) {
		c = order[i]
		# the median by frames/s, and the range
		for (a = 1; a <= n[c]; a++) idx[a] = a
		for (a = 1; a <= n[c]; a++) for (b = a + 1; b <= n[c]; b++) if (fps[c, idx[b]] < fps[c, idx[a]]) { t = idx[a]; idx[a] = idx[b]; idx[b] = t }
		med = idx[int((n[c] + 1) / 2)]
		lo = fps[c, idx[1]]; hi = fps[c, idx[n[c]]]
		$0 = row[c, med]; metrics()
		rng = n[c] > 1 ? sprintf(" (%s–%s)", comma(lo), comma(hi)) : ""
		printf "| %s | %.1f | %s%s | %.1f | %s | %s | %.2f | %.0f | %.3f | %.3f |\n", desc(c), m["wire-B/frame"],
			comma(m["frames/s"]), rng, m["wire-B/frame"] * m["frames/s"] / 1e6, comma(m["ns/op"]), comma(m["cpu-ns/frame"]),
			m["allocs/frame"], m["B/frame"], m["core%@115200"], m["cpu-core%@115200"]
	}
}' "$RAW"

cat <<EOF

### The gateway end to end: socat pty pair → [[uart]] line + regex → built-in broker → mosquitto_sub (QoS 1)

Frames like \`kitchen T=21.5 H=40\` (8 devices, $FRAME_B bytes on average with the \\n). The paced runs write $LINE_RATE bytes/s on a schedule, either one write per frame (the gateway wakes for every frame) or the frames due every $BATCH_MS ms; *max* writes as fast as the pty takes the bytes, with at most $WINDOW frames written and not yet received on MQTT. A pty has no baud rate: socat copies, the kernel flow-controls the writer. *received* = readings on MQTT, checked per device, in order, value by value. *window* = from the first write to the last reading on MQTT; *frames/s* = received ÷ window. *CPU* = utime + stime of the gateway process over the window (clock ticks of 1/$HZ s), % of one core; *CPU µs/frame* = that time ÷ frames. socat, the writer (python3) and mosquitto_sub share the same two cores: their CPU % over the window, same method. *RSS* = max VmRSS, sampled every second.

| run | frames sent | bytes/s written | received on MQTT | window s | frames/s | gateway CPU % of one core | gateway CPU µs/frame | socat CPU % | writer + mosquitto_sub CPU % | gateway RSS max MiB |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| idle (port open, nothing sent), ${IDLE} s | 0 | 0 | 0 | $I_EL | 0 | $I_CPU | – | – | – | $(awk -v k="$I_RSS" 'BEGIN { printf "%.1f", k / 1024 }') |
EOF
printf '%s\n' "${ROWS[@]}"
echo
echo "Every frame sent arrived on MQTT with its values, in order per device. Gateway log lines at warn or above: $WARNINGS."
log "done"
