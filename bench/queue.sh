#!/usr/bin/env bash
# bench/queue.sh — benchmark of the durable offline queue (run by `make bench`
# after bench/run.sh).
#
# Runs the Go benchmarks of ./queue (queue/bench_test.go and the bbolt
# comparison in queue/bbolt_bench_test.go) and prints markdown tables:
#
#   1. accepted messages/s: {segment log, bbolt} x fsync policy x {1, 32}
#      producers, each producer waiting for its message's durability
#      callback before the next; bytes written and fsyncs per message
#   2. replay of a backlog to mosquitto at QoS 1 (inflight 32 and 128)
#   3. restart with 1,000,000 queued messages (page cache warm and cold)
#   4. the aims of the issue against these numbers
#
# It takes under a minute on 2 cores (48 s here). The benchmarks write to
# TMPDIR (default /tmp): its file system is what is measured. Progress goes
# to stderr, the report to stdout. Settings (environment):
#
#   BENCH_QUEUE_TIME=1s        -benchtime of each append benchmark
#   BENCH_QUEUE_REPLAY=200000  backlog replayed to mosquitto
#   BENCH_QUEUE_RESTART=1000000  messages queued for the restart
#   BENCH_QUEUE_RAW=           a file to keep the raw `go test` output in
#   BENCH_QUEUE_FROM=          print the report from such a file instead of running
#
# mosquitto (for the replay) is looked up in PATH and /usr/sbin.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TIME=${BENCH_QUEUE_TIME:-1s}
export BENCH_QUEUE_REPLAY=${BENCH_QUEUE_REPLAY:-200000}
export BENCH_QUEUE_RESTART=${BENCH_QUEUE_RESTART:-1000000}
RAW_KEEP=${BENCH_QUEUE_RAW:-}
FROM=${BENCH_QUEUE_FROM:-}
export PATH="$PATH:/usr/sbin"

log() { printf '[bench-queue %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

RAW=$(mktemp "${TMPDIR:-/tmp}/causeway-bench-queue.XXXXXX")
cleanup() {
	local rc=$?
	if [[ -n $RAW_KEEP ]]; then
		cp "$RAW" "$RAW_KEEP" || true
	fi
	rm -f "$RAW"
	exit "$rc"
}
trap cleanup EXIT

# gobench PATTERN BENCHTIME: run the benchmarks matching PATTERN, append
# their output to RAW.
gobench() {
	local out
	log "go test -bench '$1' -benchtime $2 ./queue/"
	if ! out=$(cd "$ROOT" && go test -count=1 -timeout 15m -run '^$' -bench "$1" -benchtime "$2" ./queue/ 2>&1); then
		printf '%s\n' "$out" >&2
		log "FAILED: go test -bench '$1'"
		exit 1
	fi
	printf '%s\n' "$out" >>"$RAW"
}

if [[ -n $FROM ]]; then
	cat "$FROM" >"$RAW"
else
	START=$SECONDS
	gobench '^(BenchmarkAppend|BenchmarkBoltAppend)$' "$TIME"
	gobench '^BenchmarkReplay$' 1x
	gobench '^BenchmarkRestart$' 3x
	log "benchmarks took $((SECONDS - START)) s"
fi

# The size of one benchmark message's record in a segment file.
RECORD=$(awk '/^BenchmarkAppend\// { for (i = 3; i < NF; i += 2) if ($(i + 1) == "record-B") { print $i; exit } }' "$RAW")
RECORD=$(printf '%.0f' "${RECORD:-314}")

# Helpers of the awk programs below: metric values of a benchmark line, and
# numbers with thousands separators.
# shellcheck disable=SC2016 # awk programs, not shell
AWKLIB='
function metrics(    i) { delete m; for (i = 3; i < NF; i += 2) m[$(i + 1)] = $i }
function bname(    n) { n = $1; sub(/-[0-9]+$/, "", n); return n }
function f(x, d) { return (x == "") ? "–" : sprintf("%." d "f", x) }
function comma(x,    s, neg) {
	if (x == "") return "–"
	s = sprintf("%.0f", x); neg = ""
	if (substr(s, 1, 1) == "-") { neg = "-"; s = substr(s, 2) }
	while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s)
	return neg s
}
'

TMPFS=$(df -PT "${TMPDIR:-/tmp}" | awk 'NR == 2 { print $2 " on " $1 }')
CPU=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)

cat <<EOF

## causeway offline queue benchmark

$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) CPUs ($CPU), $(go env GOVERSION), $(mosquitto -h 2>/dev/null | head -n1 || true); queue files in ${TMPDIR:-/tmp} ($TMPFS).
Messages: 256-byte payload, 31-byte topic; a segment-log record is $RECORD bytes (27-byte header + topic + payload). Each producer appends and waits for the durability callback before the next append (as the CoAP adapter answers a confirmable request).

### Accepted messages/s (-benchtime $TIME per row)

Bytes written per message: *app* = bytes passed to write/pwrite (segment log: DiskStats.BytesWritten; bbolt: /proc/self/io wchar);
*page* = /proc/self/io write_bytes (the kernel counts a 4 KiB page each time a clean page is dirtied, so a page rewritten after every fsync counts every time);
*device* = sectors written to the block device during the run, journal included, after the files were flushed (machine-wide).
*msgs/commit* = messages per write(2) (segment log) or per transaction (bbolt): the size of a group commit.

EOF

awk "$AWKLIB"'
/^Benchmark(Bolt)?Append\// {
	split(bname(), p, "/"); metrics()
	impl = (p[1] == "BenchmarkAppend") ? "segment log" : "bbolt"
	pol = p[2]; prod = p[3]; sub(/producers=/, "", prod)
	app = (impl == "bbolt") ? m["wchar-B/msg"] : m["app-B/msg"]
	r = sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |", impl, pol, prod, comma(m["msgs/s"]),
		comma(app), comma(m["wb-B/msg"]), comma(m["dev-B/msg"]),
		f(m["fsync/msg"], (m["fsync/msg"] >= 0.1) ? 3 : 5), f(m["msg/write"], 1))
	if (impl == "bbolt") bolt[++nb] = r; else seg[++ns] = r
}
END {
	print "| implementation | fsync | producers | msgs/s | app B/msg | page B/msg | device B/msg | fsyncs/msg | msgs/commit |"
	print "|---|---|---:|---:|---:|---:|---:|---:|---:|"
	for (i = 1; i <= ns; i++) print seg[i]
	for (i = 1; i <= nb; i++) print bolt[i]
}
' "$RAW"

cat <<EOF

segment log, fsync: *batch* = accepted once written, fdatasync every 50 ms; *always* = accepted once fdatasynced (group commit); *off* = never fsynced.
bbolt: *always* = appends batched into one read-write transaction per group commit (NoSync false: bbolt fdatasyncs twice per commit, and fsyncs when it grows the file); *always-1tx* = one transaction per message; *batch* = NoSync, db.Sync every 50 ms; *off* = NoSync.

### Replay of a backlog to mosquitto, QoS 1 (mqttcore uplink, loopback, no subscriber)

| inflight | backlog | msgs/s | max in flight seen |
|---:|---:|---:|---:|
EOF
awk "$AWKLIB"'
/^BenchmarkReplay\// {
	split(bname(), p, "/"); sub(/inflight=/, "", p[2]); metrics()
	printf "| %s | %s | %s | %d |\n", p[2], comma(m["backlog"]), comma(m["msgs/s"]), m["max-inflight"]
}' "$RAW"

cat <<EOF

### Restart with a backlog (Open + first Next, mean of 3; fill with fsync = off)

| page cache | queued | restart s | Open s | first Next s | disk MiB | disk B/msg |
|---|---:|---:|---:|---:|---:|---:|
EOF
awk "$AWKLIB"'
/^BenchmarkRestart\// {
	split(bname(), p, "/"); metrics()
	printf "| %s | %s | %.4f | %.4f | %.5f | %.1f | %.1f |\n", p[2], comma(m["queued"]), m["s/restart"], m["open-s"], m["first-next-s"], m["disk-MiB"], m["disk-B/msg"]
}' "$RAW"

echo
echo "### Aims"
echo
awk -v record="$RECORD" "$AWKLIB"'
function get(key, metric) { return (key in v) ? v[key, metric] : "" }
/^Benchmark/ {
	name = bname()
	v[name] = 1
	for (i = 3; i < NF; i += 2) v[name, $(i + 1)] = $i
}
function row(aim, measured, ok) { printf "| %s | %s | %s |\n", aim, measured, ok ? "met" : "**missed**" }
END {
	print "| aim | measured (segment log) | |"
	print "|---|---|---|"
	b1 = get("BenchmarkAppend/batch/producers=1", "msgs/s"); b32 = get("BenchmarkAppend/batch/producers=32", "msgs/s")
	row("≥ 50,000 msg/s accepted, fsync = batch", comma(b1) " (1 producer), " comma(b32) " (32)", b1 >= 50000 && b32 >= 50000)
	a1 = get("BenchmarkAppend/always/producers=1", "msgs/s"); a32 = get("BenchmarkAppend/always/producers=32", "msgs/s")
	row("≥ 20,000 msg/s accepted, fsync = always, 32 producers", comma(a32) "; 1 producer: " comma(a1) sprintf(" (bound by the fsync latency, %.0f µs per message)", 1e6 / a1), a32 >= 20000)
	r32 = get("BenchmarkReplay/inflight=32", "msgs/s"); r128 = get("BenchmarkReplay/inflight=128", "msgs/s")
	row("≥ 20,000 msg/s replayed at QoS 1", comma(r32) " (inflight 32), " comma(r128) " (inflight 128)", r32 >= 20000)
	rw = get("BenchmarkRestart/warm", "s/restart"); rc = get("BenchmarkRestart/cold", "s/restart")
	row("restart < 1 s with " comma(get("BenchmarkRestart/warm", "queued")) " queued", sprintf("%.3f s (page cache warm), %.3f s (cold)", rw, rc), rc < 1 && rw < 1)
	split("batch off always", pols, " ")
	for (j = 1; j <= 3; j++) {
		pol = pols[j]; worst = 0; txt = ""
		for (k = 1; k <= 2; k++) {
			key = "BenchmarkAppend/" pol "/producers=" (k == 1 ? 1 : 32)
			app = get(key, "app-B/msg"); dev = get(key, "dev-B/msg"); pg = get(key, "wb-B/msg")
			txt = txt sprintf("%s%s producer%s: written %s (%.2f×), page %s (%.2f×), device %s (%.2f×)", (k == 1 ? "" : "; "), (k == 1 ? 1 : 32), (k == 1 ? "" : "s"),
				comma(app), app / record, comma(pg), pg / record, comma(dev), dev / record)
			worst = (app > worst) ? app : worst; worst = (dev > worst) ? dev : worst
		}
		row(sprintf("bytes written < 2 × payload+headers (%d B), fsync = %s", record, pol), txt, worst < 2 * record)
	}
}' "$RAW"
log "done"
