#!/usr/bin/env bash
# bench/run.sh — end-to-end benchmark of the gateway (run by `make bench`).
#
# Builds ./cmd/gateway, ./cmd/coapload and ./cmd/mqttcount into a temporary
# directory, starts mosquitto as the uplink broker and the gateway on free
# ports, then drives CoAP load into the gateway (coapload) while counting what
# arrives over MQTT (mqttcount), and prints markdown tables:
#
#   1. saturation: {built-in broker, uplink mosquitto} x {CON, NON}
#   2. latency at a fixed rate (default 1,000 msg/s), both brokers
#   3. uplink at route QoS 1 vs QoS 0 (the gateway restarted with qos = 0)
#   4. gateway RSS: idle, max under load per scenario, and with BENCH_STEADY
#      a long fixed-rate run with RSS sampled every 10 s.
#
# Progress goes to stderr, the report to stdout. Every process it starts is
# stopped on exit. Settings (environment):
#
#   BENCH_CLIENTS=8        coapload clients (UDP sockets)
#   BENCH_SIZE=64          CoAP payload bytes
#   BENCH_DEVICES=         devices spread over the clients (default: = clients)
#   BENCH_WINDOW=16        NON: requests outstanding per client at saturation
#   BENCH_DURATION=10s     length of each saturation run
#   BENCH_RATE=1000        msg/s of the fixed-rate runs
#   BENCH_RATE_DURATION=5s length of each fixed-rate run
#   BENCH_IDLE=3s          a subscriber stops this long after its last message
#   BENCH_DRAIN=60s        at most this long after the load for delivery to end
#   BENCH_SUB_QOS=1        subscription QoS of the counting subscriber
#   BENCH_STEADY=          e.g. 120s: add the steady run (fixed rate, RSS series)
#   BENCH_QOS0=1           0 skips the uplink QoS 0 runs (saves a restart)
#   BENCH_GATEWAY_EXTRA=   TOML appended to the gateway config (e.g. [queue] keys)
#   BENCH_LOG_LEVEL=warn   gateway log level
#   BENCH_KEEP=            1 keeps the temporary directory (configs, logs, JSON)
#   BENCH_GATEWAY_BIN=     use this gateway binary instead of building ./cmd/gateway
#   MOSQUITTO=mosquitto    the mosquitto binary (also looked up in /usr/sbin)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLIENTS=${BENCH_CLIENTS:-8}
SIZE=${BENCH_SIZE:-64}
DEVICES=${BENCH_DEVICES:-$CLIENTS}
WINDOW=${BENCH_WINDOW:-16}
DURATION=${BENCH_DURATION:-10s}
RATE=${BENCH_RATE:-1000}
RATE_DURATION=${BENCH_RATE_DURATION:-5s}
IDLE=${BENCH_IDLE:-3s}
DRAIN=${BENCH_DRAIN:-60s}
SUB_QOS=${BENCH_SUB_QOS:-1}
STEADY=${BENCH_STEADY:-}
QOS0=${BENCH_QOS0:-1}
EXTRA=${BENCH_GATEWAY_EXTRA:-}
LOG_LEVEL=${BENCH_LOG_LEVEL:-warn}
KEEP=${BENCH_KEEP:-}
GATEWAY_BIN=${BENCH_GATEWAY_BIN:-}
GATEWAY_ID=bench

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
	log "FAILED: $*"
	exit 1
}

# seconds DURATION: a Go-style duration (90s, 2m, 1m30s, 500ms) in whole seconds.
seconds() {
	local d=$1 total=0 n
	[[ $d =~ ^[0-9]+$ ]] && d="${d}s"
	while [[ -n $d ]]; do
		if [[ $d =~ ^([0-9]+)(ms|h|m|s)(.*)$ ]]; then
			n=${BASH_REMATCH[1]}
			case ${BASH_REMATCH[2]} in
			h) total=$((total + n * 3600)) ;;
			m) total=$((total + n * 60)) ;;
			s) total=$((total + n)) ;;
			ms) total=$((total + (n + 999) / 1000)) ;;
			esac
			d=${BASH_REMATCH[3]}
		else
			die "cannot read duration '$1' (use e.g. 10s, 2m, 1m30s)"
		fi
	done
	echo "$total"
}
DURATION_S=$(seconds "$DURATION")
RATE_DURATION_S=$(seconds "$RATE_DURATION")
DRAIN_S=$(seconds "$DRAIN")
STEADY_S=0
[[ -n $STEADY ]] && STEADY_S=$(seconds "$STEADY")

MOSQUITTO=${MOSQUITTO:-mosquitto}
if ! command -v "$MOSQUITTO" >/dev/null 2>&1; then
	if [[ -x /usr/sbin/$MOSQUITTO ]]; then
		MOSQUITTO=/usr/sbin/$MOSQUITTO
	else
		die "mosquitto not found (apt-get install mosquitto, or set MOSQUITTO=)"
	fi
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/causeway-bench.XXXXXX")
BIN=$TMP/bin
PIDS=() # every background process we started, stopped in reverse order

cleanup() {
	local rc=$? i pid
	trap - EXIT INT TERM
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
		log "kept $TMP (configs, logs, JSON results)"
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

# port_in_use PORT: true if something listens on the TCP or UDP port.
port_in_use() {
	if command -v ss >/dev/null 2>&1; then
		[[ -n $(ss -Htuan "sport = :$1" 2>/dev/null) ]]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}
USED_PORTS=" "
free_port() {
	local p
	for _ in {1..200}; do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		[[ $USED_PORTS == *" $p "* ]] && continue
		if ! port_in_use "$p"; then
			USED_PORTS+="$p "
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

wait_tcp() { # wait_tcp PORT PID WHAT
	for _ in {1..150}; do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# jget FILE KEY: a top-level scalar from a one-line JSON object.
jget() {
	local v
	v=$(grep -o "\"$2\":[^,}]*" "$1" 2>/dev/null | head -n1) || true
	v=${v#*:}
	v=${v//\"/}
	echo "${v:-0}"
}
ms() { awk -v u="$1" 'BEGIN { if (u >= 100000) printf "%.0f", u / 1000; else if (u >= 10000) printf "%.1f", u / 1000; else printf "%.2f", u / 1000 }'; }
int() { awk -v x="$1" 'BEGIN { printf "%.0f", x }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

rss_kib() { # rss_kib PID: VmRSS in KiB
	local k v _
	while read -r k v _; do
		if [[ $k == VmRSS: ]]; then
			echo "$v"
			return
		fi
	done <"/proc/$1/status"
	echo 0
}

# sample_rss PID STOPFILE OUTFILE [SERIESFILE]: VmRSS every 250 ms until
# STOPFILE exists, then the max into OUTFILE; every 10 s "SECONDS KIB" is
# appended to SERIESFILE. (Short sleeps only, so it stops promptly.)
sample_rss() {
	local pid=$1 stop=$2 out=$3 series=${4:-} max=0 v now
	local t0=${EPOCHREALTIME/./} next=0
	while [[ ! -e $stop ]] && kill -0 "$pid" 2>/dev/null; do
		v=$(rss_kib "$pid" 2>/dev/null || echo 0)
		((v > max)) && max=$v
		now=$((${EPOCHREALTIME/./} - t0))
		if [[ -n $series ]] && ((now >= next)); then
			echo "$((next / 1000000)) $v" >>"$series"
			next=$((next + 10000000))
		fi
		sleep 0.25
	done
	echo "$max" >"$out"
}

# ---------------------------------------------------------------------------
log "building into $BIN"
mkdir -p "$BIN"
if [[ -n $GATEWAY_BIN ]]; then
	[[ -x $GATEWAY_BIN ]] || die "BENCH_GATEWAY_BIN=$GATEWAY_BIN is not executable"
	cp "$GATEWAY_BIN" "$BIN/gateway"
	(cd "$ROOT" && go build -o "$BIN/" ./cmd/coapload ./cmd/mqttcount) || die "go build failed"
else
	(cd "$ROOT" && go build -o "$BIN/" ./cmd/gateway ./cmd/coapload ./cmd/mqttcount) ||
		die "go build failed"
fi

MOSQ_PORT=$(free_port)
sed "s/@PORT@/$MOSQ_PORT/g" "$ROOT/bench/mosquitto.conf.tmpl" >"$TMP/mosquitto.conf"
"$MOSQUITTO" -c "$TMP/mosquitto.conf" >"$TMP/mosquitto.log" 2>&1 &
MOSQ_PID=$!
PIDS+=("$MOSQ_PID")
wait_tcp "$MOSQ_PORT" "$MOSQ_PID" || {
	cat "$TMP/mosquitto.log" >&2
	die "mosquitto did not start"
}
log "mosquitto (uplink) on 127.0.0.1:$MOSQ_PORT"

GW_PID=
COAP_URL=
BUILTIN_URL=
UPLINK_URL=mqtt://127.0.0.1:$MOSQ_PORT
RUN_ID=$(((RANDOM * 32768 + RANDOM) % 100000 * 1000))

next_run() { RUN_ID=$((RUN_ID + 1)); }

# start_gateway QOS NAME: write the config and start the gateway; wait until
# a reading goes through to both brokers.
start_gateway() {
	local qos=$1 name=$2 coap_port broker_port t
	coap_port=$(free_port)
	broker_port=$(free_port)
	mkdir -p "$TMP/data-$name"
	t=$(<"$ROOT/bench/gateway.toml.tmpl")
	t=${t//@GATEWAY_ID@/"$GATEWAY_ID"}
	t=${t//@DATA_DIR@/"$TMP/data-$name"}
	t=${t//@LOG_LEVEL@/"$LOG_LEVEL"}
	t=${t//@BROKER_PORT@/"$broker_port"}
	t=${t//@UPLINK_PORT@/"$MOSQ_PORT"}
	t=${t//@COAP_PORT@/"$coap_port"}
	t=${t//@QOS@/"$qos"}
	t=${t//@EXTRA@/"$EXTRA"}
	printf '%s\n' "$t" >"$TMP/gateway-$name.toml"
	"$BIN/gateway" run -c "$TMP/gateway-$name.toml" >"$TMP/gateway-$name.log" 2>&1 &
	GW_PID=$!
	PIDS+=("$GW_PID")
	COAP_URL=coap://127.0.0.1:$coap_port
	BUILTIN_URL=mqtt://127.0.0.1:$broker_port
	if ! wait_tcp "$broker_port" "$GW_PID"; then
		tail -n 30 "$TMP/gateway-$name.log" >&2 || true
		die "gateway did not start (config $TMP/gateway-$name.toml)"
	fi
	probe "$BUILTIN_URL" || die "no reading arrived on the built-in broker"
	probe "$UPLINK_URL" || die "no reading arrived on the uplink broker"
	log "gateway pid $GW_PID (route qos $qos): CoAP $COAP_URL, broker $BUILTIN_URL, uplink $UPLINK_URL"
}

# stop_gateway: orderly shutdown (SIGTERM), then forget it.
stop_gateway() {
	[[ -n $GW_PID ]] || return 0
	kill -TERM "$GW_PID" 2>/dev/null || true
	for _ in {1..100}; do
		kill -0 "$GW_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$GW_PID" 2>/dev/null || true
	wait "$GW_PID" 2>/dev/null || true
	forget "$GW_PID"
	GW_PID=
}

# start_counter URL NAME TIMEOUT_S [ARGS...]: mqttcount in the background
# for run RUN_ID.
MC_PID=
start_counter() {
	local url=$1 name=$2 timeout=$3
	shift 3
	rm -f "$TMP/$name.ready"
	"$BIN/mqttcount" -broker "$url" -topic "$GATEWAY_ID/coap/#" -qos "$SUB_QOS" -run "$RUN_ID" \
		-idle "$IDLE" -duration "${timeout}s" -ready-file "$TMP/$name.ready" -json "$@" \
		>"$TMP/$name.mqtt.json" 2>"$TMP/$name.mqtt.log" &
	MC_PID=$!
	PIDS+=("$MC_PID")
	for _ in {1..100}; do
		[[ -e $TMP/$name.ready ]] && return 0
		kill -0 "$MC_PID" 2>/dev/null || break
		sleep 0.05
	done
	cat "$TMP/$name.mqtt.log" >&2
	die "mqttcount could not subscribe on $url"
}
wait_counter() {
	wait "$MC_PID" || true
	forget "$MC_PID"
}

# probe URL: one reading through the gateway must reach the broker at URL.
probe() {
	local url=$1 name
	next_run
	name=probe-$RUN_ID
	start_counter "$url" "$name" 20 -expect 1
	for _ in {1..40}; do
		"$BIN/coapload" -url "$COAP_URL" -clients 1 -count 1 -run "$RUN_ID" -timeout 500ms -json \
			>"$TMP/$name.coap.json" 2>"$TMP/$name.coap.log" || true
		[[ $(jget "$TMP/$name.coap.json" ok) == 1 ]] && break
		kill -0 "$GW_PID" 2>/dev/null || break
		sleep 0.25
	done
	# -expect 1 ends the counter once the reading arrived; -duration if never.
	wait_counter
	if [[ $(jget "$TMP/$name.mqtt.json" unique) -ge 1 ]]; then
		return 0
	fi
	{
		echo "--- probe: CoAP POST to $COAP_URL (last attempt)"
		cat "$TMP/$name.coap.log"
		echo "--- probe: subscriber on $url"
		cat "$TMP/$name.mqtt.log"
		echo "--- gateway log (last lines)"
		tail -n 30 "$TMP"/gateway-*.log
	} >&2 || true
	return 1
}

ROWS=()
NOTES=()
RSS_MAX_ALL=0
# scenario NAME LABEL URL MODE RATE DURATION_S [SERIESFILE]: one load run
# while counting. MODE is CON or NON; RATE 0 saturates. Appends a markdown
# row to ROWS.
scenario() {
	local name=$1 label=$2 url=$3 mode=$4 rate=$5 dur=$6 series=${7:-} args rss cj mj
	next_run
	log "run $RUN_ID: $label, $mode, $([[ $rate == 0 ]] && echo saturating || echo "$rate msg/s") for ${dur}s"
	start_counter "$url" "$name" $((dur + DRAIN_S))
	rm -f "$TMP/$name.stop"
	sample_rss "$GW_PID" "$TMP/$name.stop" "$TMP/$name.rss" "$series" &
	PIDS+=("$!")
	local sampler=$!
	args=(-url "$COAP_URL" -clients "$CLIENTS" -devices "$DEVICES" -size "$SIZE" -window "$WINDOW"
		-run "$RUN_ID" -duration "${dur}s" -rate "$rate" -json)
	[[ $mode == NON ]] && args+=(-non)
	"$BIN/coapload" "${args[@]}" >"$TMP/$name.coap.json" 2>"$TMP/$name.coap.log" || true
	if [[ $(jget "$TMP/$name.coap.json" ok) == 0 ]]; then
		# Nothing was accepted: do not wait BENCH_DRAIN for readings that
		# cannot come (mqttcount prints its summary on SIGTERM).
		log "  no reading was accepted (see $name.coap.log); not waiting for delivery"
		sleep 1
		kill -TERM "$MC_PID" 2>/dev/null || true
	fi
	wait_counter
	touch "$TMP/$name.stop"
	wait "$sampler" || true
	forget "$sampler"
	kill -0 "$GW_PID" 2>/dev/null || {
		tail -n 30 "$TMP/gateway-"*.log >&2 || true
		die "the gateway exited during $name"
	}
	cj=$TMP/$name.coap.json
	mj=$TMP/$name.mqtt.json
	[[ -s $cj ]] || {
		cat "$TMP/$name.coap.log" >&2
		die "coapload failed in $name"
	}
	[[ -s $mj ]] || {
		cat "$TMP/$name.mqtt.log" >&2
		die "mqttcount failed in $name"
	}
	local sent ok unique lost dups notok achieved
	sent=$(jget "$cj" sent)
	achieved=$(jget "$cj" rate)
	if [[ $rate != 0 ]] && awk -v a="$achieved" -v r="$rate" 'BEGIN { exit !(a < 0.95 * r) }'; then
		NOTES+=("$label $mode at $rate/s: only $(int "$achieved") req/s were sent; the $CLIENTS clients were waiting for responses (CON sends one request per client at a time).")
	fi
	ok=$(jget "$cj" ok)
	notok=$((sent - ok))
	unique=$(jget "$mj" unique)
	dups=$(jget "$mj" duplicates)
	lost=$((ok - unique))
	((lost < 0)) && lost=0
	if [[ $(jget "$mj" stop) == duration ]]; then
		NOTES+=("$label $mode $([[ $rate == 0 ]] && echo saturating || echo "at $rate/s"): delivery had not ended ${DRAIN_S}s after the load (BENCH_DRAIN); readings still queued count as lost.")
	fi
	rss=$(<"$TMP/$name.rss")
	((rss > RSS_MAX_ALL)) && RSS_MAX_ALL=$rss
	ROWS+=("| $label | $mode | $([[ $rate == 0 ]] && echo max || echo "$rate/s") | $sent | $(int "$achieved") | $ok | $notok | $unique | $lost | $dups | $(jget "$mj" reordered) | $(int "$(jget "$mj" rate)") | $(ms "$(jget "$mj" p50_us)") | $(ms "$(jget "$mj" p99_us)") | $(ms "$(jget "$cj" p50_us)") | $(ms "$(jget "$cj" p99_us)") | $(mib "$rss") |")
	log "  sent $sent, 2.04 $ok, delivered $unique, lost $lost, dups $dups; subscriber stopped by $(jget "$mj" stop)"
}

HEADER='| scenario | CoAP | load | sent | CoAP req/s | accepted (2.xx) | not accepted | delivered | lost | dups | reordered | delivered msg/s | e2e p50 ms | e2e p99 ms | CoAP p50 ms | CoAP p99 ms | RSS max MiB |
|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'

# ---------------------------------------------------------------------------
start_gateway 1 qos1
sleep 2
RSS_IDLE=$(rss_kib "$GW_PID")
log "gateway idle RSS $(mib "$RSS_IDLE") MiB"

scenario sat-builtin-con "built-in broker" "$BUILTIN_URL" CON 0 "$DURATION_S"
scenario sat-builtin-non "built-in broker" "$BUILTIN_URL" NON 0 "$DURATION_S"
scenario sat-uplink-con "uplink mosquitto" "$UPLINK_URL" CON 0 "$DURATION_S"
scenario sat-uplink-non "uplink mosquitto" "$UPLINK_URL" NON 0 "$DURATION_S"
SAT_ROWS=("${ROWS[@]}")
ROWS=()
scenario rate-builtin-con "built-in broker" "$BUILTIN_URL" CON "$RATE" "$RATE_DURATION_S"
scenario rate-uplink-con "uplink mosquitto" "$UPLINK_URL" CON "$RATE" "$RATE_DURATION_S"
RATE_ROWS=("${ROWS[@]}")
QOS_ROWS=()
QOS_ROWS+=("${SAT_ROWS[2]/uplink mosquitto/uplink, route qos 1}" "${RATE_ROWS[1]/uplink mosquitto/uplink, route qos 1}")

STEADY_SERIES=
STEADY_ROW=
if ((STEADY_S > 0)); then
	ROWS=()
	log "steady run: $RATE msg/s for ${STEADY_S}s, RSS every 10 s"
	series_file=$TMP/steady.series
	scenario steady "uplink mosquitto" "$UPLINK_URL" CON "$RATE" "$STEADY_S" "$series_file"
	STEADY_ROW=${ROWS[0]}
	STEADY_SERIES=$(awk '{ printf "%s%ss: %.1f", (NR > 1 ? ", " : ""), $1, $2 / 1024 } END { print "" }' "$series_file")
fi

if [[ $QOS0 != 0 ]]; then
	stop_gateway
	start_gateway 0 qos0
	ROWS=()
	scenario qos0-uplink-con "uplink, route qos 0" "$UPLINK_URL" CON 0 "$DURATION_S"
	scenario qos0-rate-uplink-con "uplink, route qos 0" "$UPLINK_URL" CON "$RATE" "$RATE_DURATION_S"
	QOS_ROWS+=("${ROWS[@]}")
fi

# ---------------------------------------------------------------------------
cat <<EOF

## causeway gateway benchmark

$(date -u '+%Y-%m-%d %H:%M UTC'), gateway $("$BIN/gateway" version 2>/dev/null | head -n1 || echo '?'), commit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) CPUs, $(go env GOVERSION), $("$MOSQUITTO" -h 2>/dev/null | head -n1 || true).
Load: coapload with $CLIENTS clients (one UDP socket each), $DEVICES devices, $SIZE-byte JSON payloads; NON keeps $WINDOW requests per client in flight.
Counting: mqttcount subscribed to \`$GATEWAY_ID/coap/#\` at QoS $SUB_QOS on the broker named in the row. Route qos 1 unless the row says otherwise.
*accepted* = 2.xx responses; *lost* = accepted − delivered (unique seqs); *reordered* = readings that arrived after a later one of the same device; *e2e* = CoAP send → MQTT receive.

### Saturation (${DURATION_S}s per run)

$HEADER
$(printf '%s\n' "${SAT_ROWS[@]}")

### Latency at a fixed $RATE msg/s (${RATE_DURATION_S}s per run)

$HEADER
$(printf '%s\n' "${RATE_ROWS[@]}")

### Uplink: route QoS 1 vs QoS 0

$HEADER
$(printf '%s\n' "${QOS_ROWS[@]}")
EOF
if [[ $QOS0 == 0 ]]; then
	echo
	echo "(QoS 0 runs skipped: BENCH_QOS0=0)"
fi
cat <<EOF

### Gateway memory (VmRSS)

| state | RSS MiB |
|---|---:|
| idle, after start | $(mib "$RSS_IDLE") |
| under load, max of all runs (sampled every 250 ms) | $(mib "$RSS_MAX_ALL") |
EOF
if ((${#NOTES[@]} > 0)); then
	echo
	printf -- '- %s\n' "${NOTES[@]}"
fi
if [[ -n $STEADY_ROW ]]; then
	cat <<EOF

### Steady run: $RATE msg/s for ${STEADY_S}s (uplink mosquitto)

$HEADER
$STEADY_ROW

RSS MiB every 10 s: $STEADY_SERIES
EOF
else
	echo
	echo "(Steady run skipped: set BENCH_STEADY=120s to add it.)"
fi
log "done"
