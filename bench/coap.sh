#!/usr/bin/env bash
# bench/coap.sh — benchmark of the CoAP adapter (issue 6), run by `make bench`
# after bench/uart.sh.
#
#   1. POSTs/s into the gateway's CoAP server from BENCH_COAP_CLIENTS
#      concurrent clients (coapload, one UDP socket each), confirmable and
#      non-confirmable, saturating, for BENCH_COAP_DURATION each; every
#      reading counted on the built-in broker (mqttcount, QoS 1).
#   2. The same over DTLS (dtls_listen, one [[coap.psk]]): each client is
#      one DTLS session (PSK, TLS_PSK_WITH_AES_128_CCM_8 or _GCM_SHA256;
#      pion picks the server's preference). The session setup (dial +
#      handshake of all clients, before the clock starts) is shown apart.
#   3. Observe: cmd/coapobs serves N observable resources /r0../rN-1 on one
#      UDP socket, each sending a non-confirmable notification every period
#      to its observer; a gateway with N [[coap.device]] (observe = true,
#      interval 10m) observes them. Once all N devices are online (the
#      gateway's "coap device online" log lines), coapobs opens a counted
#      window (SIGUSR1) of BENCH_COAP_OBS_WINDOW: its notifications carry a
#      run id and a global seq, and mqttcount counts them on the built-in
#      broker. Twice: N = BENCH_COAP_OBS (100) at BENCH_COAP_OBS_PERIOD
#      (10 ms: 10,000 notifications/s offered), and N = BENCH_COAP_OBS_BIG
#      (1,000) at BENCH_COAP_OBS_BIG_PERIOD (1 s), where the gateway's VmRSS
#      and threads are read once all are online.
#
# CPU is utime + stime of /proc/PID/stat over the load (coapload's run, or
# the counted window), as % of one core. VmRSS is sampled every 250 ms.
#
# Progress goes to stderr, the report (markdown) to stdout. Every process it
# starts is stopped on exit. Settings (environment):
#
#   BENCH_COAP_CLIENTS=100         coapload clients (plain UDP)
#   BENCH_COAP_DTLS_CLIENTS=       clients over DTLS (default: BENCH_COAP_CLIENTS)
#   BENCH_COAP_DURATION=10s        length of each POST run
#   BENCH_COAP_WINDOW=2            NON: requests outstanding per client
#   BENCH_COAP_SIZE=64             payload bytes of a POST
#   BENCH_COAP_OBS=100             observed resources of the throughput run
#   BENCH_COAP_OBS_PERIOD=10ms     their notification period
#   BENCH_COAP_OBS_BIG=1000        observed resources of the memory run (0 skips it)
#   BENCH_COAP_OBS_BIG_PERIOD=1s   their notification period
#   BENCH_COAP_OBS_WINDOW=10s      counted window of each observe run
#   BENCH_COAP_IDLE=3s             a subscriber stops this long after its last message
#   BENCH_COAP_DRAIN=30s           at most this long after the load for delivery to end
#   BENCH_COAP_KEEP=               1 keeps the temporary directory (configs, logs, JSON)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLIENTS=${BENCH_COAP_CLIENTS:-100}
DTLS_CLIENTS=${BENCH_COAP_DTLS_CLIENTS:-$CLIENTS}
DURATION=${BENCH_COAP_DURATION:-10s}
WINDOW=${BENCH_COAP_WINDOW:-2}
SIZE=${BENCH_COAP_SIZE:-64}
OBS=${BENCH_COAP_OBS:-100}
OBS_PERIOD=${BENCH_COAP_OBS_PERIOD:-10ms}
OBS_BIG=${BENCH_COAP_OBS_BIG:-1000}
OBS_BIG_PERIOD=${BENCH_COAP_OBS_BIG_PERIOD:-1s}
OBS_WINDOW=${BENCH_COAP_OBS_WINDOW:-10s}
IDLE=${BENCH_COAP_IDLE:-3s}
DRAIN=${BENCH_COAP_DRAIN:-30s}
KEEP=${BENCH_COAP_KEEP:-}
GATEWAY_ID=bench
PSK_IDENTITY=bench-load
PSK_KEY=000102030405060708090a0b0c0d0e0f
TICK=$(getconf CLK_TCK)

log() { printf '[bench-coap %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
	log "FAILED: $*"
	exit 1
}

# seconds DURATION: a Go-style duration (90s, 2m, 500ms) in whole seconds, rounded up.
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
			die "cannot read duration '$1' (use e.g. 10s, 2m, 500ms)"
		fi
	done
	echo "$total"
}
DURATION_S=$(seconds "$DURATION")
OBS_WINDOW_S=$(seconds "$OBS_WINDOW")
DRAIN_S=$(seconds "$DRAIN")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/causeway-bench-coap.XXXXXX")
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

# stop_pid PID: SIGTERM, wait up to 10 s, SIGKILL; then forget it.
stop_pid() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || true
	for _ in {1..100}; do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	forget "$pid"
}

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

wait_tcp() { # wait_tcp PORT PID
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
now_us() { echo "${EPOCHREALTIME/./}"; }

status_field() { # status_field PID FIELD: a number from /proc/PID/status (VmRSS in KiB, Threads)
	local k v _
	while read -r k v _; do
		if [[ $k == "$2:" ]]; then
			echo "$v"
			return
		fi
	done <"/proc/$1/status"
	echo 0
}
cpu_ticks() { # cpu_ticks PID: utime + stime
	local s
	s=$(<"/proc/$1/stat")
	s=${s##*) } # fields from 3 on; the command name may hold spaces
	read -r -a f <<<"$s"
	echo $((f[11] + f[12]))
}
# cpu_pct TICKS0 TICKS1 US0 US1: % of one core
cpu_pct() { awk -v a="$1" -v b="$2" -v t0="$3" -v t1="$4" -v hz="$TICK" 'BEGIN { printf "%.1f", (b - a) / hz / ((t1 - t0) / 1e6) * 100 }'; }

# sample_rss PID STOPFILE OUTFILE: max VmRSS every 250 ms until STOPFILE exists.
sample_rss() {
	local pid=$1 stop=$2 out=$3 max=0 v
	while [[ ! -e $stop ]] && kill -0 "$pid" 2>/dev/null; do
		v=$(status_field "$pid" VmRSS 2>/dev/null || echo 0)
		((v > max)) && max=$v
		sleep 0.25
	done
	echo "$max" >"$out"
}
SAMPLER=
start_sampler() { # start_sampler PID NAME
	rm -f "$TMP/$2.stop"
	sample_rss "$1" "$TMP/$2.stop" "$TMP/$2.rss" &
	SAMPLER=$!
	PIDS+=("$SAMPLER")
}
stop_sampler() { # stop_sampler NAME
	touch "$TMP/$1.stop"
	wait "$SAMPLER" || true
	forget "$SAMPLER"
}

# ---------------------------------------------------------------------------
log "building into $BIN"
mkdir -p "$BIN"
(cd "$ROOT" && go build -o "$BIN/" ./cmd/gateway ./cmd/coapload ./cmd/mqttcount ./cmd/coapobs) ||
	die "go build failed"
UPTIME_BEFORE=$(uptime)

RUN_ID=$(((RANDOM * 32768 + RANDOM) % 100000 * 1000))
next_run() { RUN_ID=$((RUN_ID + 1)); }

# The built-in broker drops a message for a subscriber whose pending-write
# queue is full (a slow subscriber; counted, logged rate-limited). Its count
# is on the retained $SYS/broker/messages/dropped, republished every 10 s;
# with mosquitto_sub a watcher records every value with its arrival time,
# so that a reading lost to the counting subscriber can be told apart from
# one the gateway lost.
SYS_PID=
SYS_FILE=
start_sys_watch() { # start_sys_watch NAME PORT
	SYS_FILE=
	command -v mosquitto_sub >/dev/null 2>&1 || return 0
	SYS_FILE=$TMP/$1.sys
	mosquitto_sub -h 127.0.0.1 -p "$2" -t '$SYS/broker/messages/dropped' -F '%U %p' >"$SYS_FILE" 2>/dev/null &
	SYS_PID=$!
	PIDS+=("$SYS_PID")
}
# dropped_after US: the broker's dropped count at its first $SYS tick after
# US (µs since the epoch); waits up to 12 s. "–" without mosquitto_sub.
dropped_after() {
	local t=$(($1 * 1000)) ts v
	if [[ -z $SYS_FILE ]]; then
		echo "–"
		return
	fi
	for _ in {1..120}; do
		while read -r ts v; do
			[[ $ts =~ ^[0-9]+\.[0-9]{9}$ ]] || continue
			if ((10#${ts/./} > t)); then
				echo "$v"
				return
			fi
		done <"$SYS_FILE"
		sleep 0.1
	done
	echo "?"
}
# dropped_now: the last dropped count the watcher saw ("–" without it). Exact
# while nobody but the watcher subscribes: drops happen to subscribers only.
dropped_now() {
	local v
	if [[ -z $SYS_FILE ]]; then
		echo "–"
		return
	fi
	v=$(tail -n 1 "$SYS_FILE" 2>/dev/null) || true
	v=${v##* }
	echo "${v:-?}"
}
drop_delta() { # drop_delta D0 D1
	if [[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]]; then echo $(($2 - $1)); else echo "–"; fi
}

GW_ENV= # e.g. GODEBUG=gctrace=1
GW_PID=
BROKER_URL=
COAP_URL=
COAPS_URL=
# start_gateway NAME LOG_LEVEL BODY: a gateway with the built-in broker, no
# uplink, and BODY ([[coap]] blocks) in its config; waits for the broker.
start_gateway() {
	local name=$1 level=$2 body=$3 broker_port
	broker_port=$(free_port)
	mkdir -p "$TMP/data-$name"
	cat >"$TMP/gateway-$name.toml" <<EOF
[gateway]
id = "$GATEWAY_ID"
data_dir = "$TMP/data-$name"
log_level = "$level"
stats_interval = "0s"

[broker]
listen = "127.0.0.1:$broker_port"

$body

[[route]]
match = "**"
qos = 1
EOF
	env ${GW_ENV:+"$GW_ENV"} "$BIN/gateway" run -c "$TMP/gateway-$name.toml" >"$TMP/gateway-$name.log" 2>&1 &
	GW_PID=$!
	PIDS+=("$GW_PID")
	BROKER_URL=mqtt://127.0.0.1:$broker_port
	if ! wait_tcp "$broker_port" "$GW_PID"; then
		tail -n 30 "$TMP/gateway-$name.log" >&2 || true
		die "gateway did not start (config $TMP/gateway-$name.toml)"
	fi
	start_sys_watch "$name" "$broker_port"
	log "gateway $name: pid $GW_PID, broker $BROKER_URL"
}
stop_gateway() {
	[[ -n $GW_PID ]] || return 0
	if [[ -n $SYS_PID ]]; then
		stop_pid "$SYS_PID"
		SYS_PID=
	fi
	stop_pid "$GW_PID"
	GW_PID=
}
gateway_alive() { # gateway_alive WHAT
	kill -0 "$GW_PID" 2>/dev/null && return 0
	tail -n 30 "$TMP"/gateway-*.log >&2 || true
	die "the gateway exited during $1"
}

# start_counter NAME TIMEOUT_S [ARGS...]: mqttcount on the built-in broker,
# run RUN_ID, in the background; returns once it is subscribed.
MC_PID=
start_counter() {
	local name=$1 timeout=$2
	shift 2
	rm -f "$TMP/$name.ready"
	"$BIN/mqttcount" -broker "$BROKER_URL" -topic "$GATEWAY_ID/coap/+" -qos 1 -run "$RUN_ID" \
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
	die "mqttcount could not subscribe on $BROKER_URL"
}
wait_counter() {
	wait "$MC_PID" || true
	forget "$MC_PID"
}

# probe URL [ARGS...]: one POST to URL must reach the built-in broker.
probe() {
	local url=$1 name
	shift
	next_run
	name=probe-$RUN_ID
	start_counter "$name" 20 -expect 1
	for _ in {1..40}; do
		"$BIN/coapload" -url "$url" "$@" -clients 1 -count 1 -run "$RUN_ID" -timeout 1s -json \
			>"$TMP/$name.coap.json" 2>"$TMP/$name.coap.log" || true
		[[ $(jget "$TMP/$name.coap.json" ok) == 1 ]] && break
		kill -0 "$GW_PID" 2>/dev/null || break
		sleep 0.25
	done
	wait_counter
	[[ $(jget "$TMP/$name.mqtt.json" unique) -ge 1 ]] && return 0
	{
		echo "--- probe: POST to $url"
		cat "$TMP/$name.coap.log"
		echo "--- subscriber"
		cat "$TMP/$name.mqtt.log"
		echo "--- gateway log (last lines)"
		tail -n 30 "$TMP"/gateway-*.log
	} >&2 || true
	return 1
}

# ---------------------------------------------------------------------------
# Parts 1 and 2: POSTs, plain and over DTLS, into one gateway.
COAP_PORT=$(free_port)
DTLS_PORT=$(free_port)
start_gateway post warn "[[coap]]
listen = \"127.0.0.1:$COAP_PORT\"
dtls_listen = \"127.0.0.1:$DTLS_PORT\"
rate_limit = 0                  # the load comes from one host: no per-source limit
[[coap.psk]]
identity = \"$PSK_IDENTITY\"
key = \"$PSK_KEY\""
COAP_URL=coap://127.0.0.1:$COAP_PORT
COAPS_URL=coaps://127.0.0.1:$DTLS_PORT
DTLS_ARGS=(-psk-identity "$PSK_IDENTITY" -psk-key "$PSK_KEY")
probe "$COAP_URL" || die "no reading arrived over plain CoAP"
probe "$COAPS_URL" "${DTLS_ARGS[@]}" || die "no reading arrived over DTLS"
LAST_DROPPED=$(dropped_after 0)
[[ -n $SYS_FILE ]] || log "mosquitto_sub not found: the broker's drop counts are not shown"
sleep 1
RSS_IDLE=$(status_field "$GW_PID" VmRSS)
THREADS_IDLE=$(status_field "$GW_PID" Threads)
log "gateway idle: RSS $(mib "$RSS_IDLE") MiB, $THREADS_IDLE threads"

POST_ROWS=()
NOTES=()
# post NAME TRANSPORT MODE CLIENTS: one saturating POST run while counting.
post() {
	local name=$1 transport=$2 mode=$3 clients=$4 url=$COAP_URL args c0 c1 w0 w1 d0 d1 q0 q1
	args=()
	if [[ $transport == DTLS ]]; then
		url=$COAPS_URL
		args=("${DTLS_ARGS[@]}")
	fi
	next_run
	log "run $RUN_ID: $transport $mode, $clients clients, saturating for ${DURATION_S}s"
	start_counter "$name" $((DURATION_S + 20 + DRAIN_S))
	start_sampler "$GW_PID" "$name"
	args+=(-url "$url" -clients "$clients" -size "$SIZE" -window "$WINDOW" -run "$RUN_ID"
		-duration "${DURATION_S}s" -json)
	[[ $mode == NON ]] && args+=(-non)
	d0=$LAST_DROPPED
	q0=$(grep -c 'client store quota reached' "$TMP/gateway-post.log" || true)
	w0=$(now_us)
	c0=$(cpu_ticks "$GW_PID")
	"$BIN/coapload" "${args[@]}" >"$TMP/$name.coap.json" 2>"$TMP/$name.coap.log" || true
	c1=$(cpu_ticks "$GW_PID")
	w1=$(now_us)
	if [[ $(jget "$TMP/$name.coap.json" ok) == 0 ]]; then
		log "  no reading was accepted (see $name.coap.log); not waiting for delivery"
		sleep 1
		kill -TERM "$MC_PID" 2>/dev/null || true
	fi
	wait_counter
	stop_sampler "$name"
	gateway_alive "$name"
	# the next $SYS tick after delivery ended closes this run's drop count
	d1=$(dropped_after "$(now_us)")
	LAST_DROPPED=$d1
	# drops at the subscriber's in-flight quota are not in $SYS; the broker
	# logs them (rate-limited)
	q1=$(grep -c 'client store quota reached' "$TMP/gateway-post.log" || true)
	if ((q1 > q0)); then
		NOTES+=("$transport $mode: the built-in broker also logged $((q1 - q0)) 'client store quota reached' lines (rate-limited, each for some messages dropped at the counting subscriber's in-flight quota, which \$SYS does not count).")
	fi
	local cj=$TMP/$name.coap.json mj=$TMP/$name.mqtt.json
	[[ -s $cj ]] || {
		cat "$TMP/$name.coap.log" >&2
		die "coapload failed in $name"
	}
	[[ -s $mj ]] || {
		cat "$TMP/$name.mqtt.log" >&2
		die "mqttcount failed in $name"
	}
	local sent ok unique lost setup total
	sent=$(jget "$cj" sent)
	ok=$(jget "$cj" ok)
	unique=$(jget "$mj" unique)
	lost=$((ok - unique))
	((lost < 0)) && lost=0
	total=$(jget "$cj" total_s)
	# coapload starts its clock once every client is dialed (and handshaken)
	setup=$(awk -v w="$((w1 - w0))" -v t="$total" 'BEGIN { printf "%.2f", w / 1e6 - t }')
	if [[ $(jget "$mj" stop) == duration ]]; then
		NOTES+=("$transport $mode: delivery had not ended ${DRAIN_S}s after the load (BENCH_COAP_DRAIN); readings still queued count as lost.")
	fi
	POST_ROWS+=("| $transport | $mode | $clients | $sent | $(int "$(jget "$cj" rate)") | $ok | $((sent - ok)) | $(jget "$cj" timeouts) | $unique | $lost | $(drop_delta "$d0" "$d1") | $(jget "$mj" duplicates) | $(int "$(jget "$mj" rate)") | $(ms "$(jget "$cj" p50_us)") | $(ms "$(jget "$cj" p99_us)") | $(ms "$(jget "$mj" p50_us)") | $(ms "$(jget "$mj" p99_us)") | $(cpu_pct "$c0" "$c1" "$w0" "$w1") | $(mib "$(<"$TMP/$name.rss")") | $setup |")
	log "  sent $sent, 2.xx $ok, timeouts $(jget "$cj" timeouts), delivered $unique, lost $lost (broker dropped $(drop_delta "$d0" "$d1") for the subscriber); setup ${setup}s"
}

post udp-con UDP CON "$CLIENTS"
post udp-non UDP NON "$CLIENTS"
post dtls-con DTLS CON "$DTLS_CLIENTS"
post dtls-non DTLS NON "$DTLS_CLIENTS"
THREADS_POST=$(status_field "$GW_PID" Threads)
stop_gateway

# ---------------------------------------------------------------------------
# Part 3: observe.
OBS_ROWS=()
MEM_ROWS=()
# observe NAME N PERIOD: coapobs with N resources, a gateway observing them,
# a counted window.
observe() {
	local name=$1 n=$2 period=$3 obs_pid obs_addr body i t0 t_online online c0 c1 o0 o1 w0 w1 d0 d1 q0 q1
	next_run
	log "observe $name: $n resources, period $period"
	rm -f "$TMP/$name.addr" "$TMP/$name.window.json"
	"$BIN/coapobs" -listen "127.0.0.1:$(free_port)" -resources "$n" -period "$period" \
		-window "${OBS_WINDOW_S}s" -run "$RUN_ID" -result "$TMP/$name.window.json" \
		-ready-file "$TMP/$name.addr" -json >"$TMP/$name.obs.json" 2>"$TMP/$name.obs.log" &
	obs_pid=$!
	PIDS+=("$obs_pid")
	for _ in {1..100}; do
		[[ -s $TMP/$name.addr ]] && break
		kill -0 "$obs_pid" 2>/dev/null || break
		sleep 0.05
	done
	[[ -s $TMP/$name.addr ]] || {
		cat "$TMP/$name.obs.log" >&2
		die "coapobs did not start"
	}
	obs_addr=$(<"$TMP/$name.addr")
	body="[[coap]]
listen = \"\"                     # no server: only the devices below"
	for ((i = 0; i < n; i++)); do
		body+="
[[coap.device]]
device = \"r$i\"
url = \"coap://$obs_addr/r$i\"
observe = true
interval = \"10m\""
	done
	t0=$(now_us)
	GW_ENV=GODEBUG=gctrace=1 # the live heap after each GC, in the gateway's log
	start_gateway "$name" info "$body"
	GW_ENV=
	# every device logs "coap device online" once observed
	online=0
	for _ in {1..600}; do
		online=$(grep -c 'coap device online' "$TMP/gateway-$name.log" || true)
		((online >= n)) && break
		gateway_alive "$name"
		sleep 0.1
	done
	t_online=$(awk -v a="$t0" -v b="$(now_us)" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')
	((online >= n)) || die "$name: only $online of $n devices online after 60 s"
	log "  all $n online after ${t_online}s"
	sleep 3 # settle
	local rss_online threads heap gcline avail
	rss_online=$(status_field "$GW_PID" VmRSS)
	threads=$(status_field "$GW_PID" Threads)
	# gctrace: "gc 9 @2.1s 1%: ..., 12->13->6 MB, 14 MB goal, 0 MB stacks, ..."
	gcline=$(grep '^gc [0-9]* @' "$TMP/gateway-$name.log" | tail -n 1) || true
	heap=$(sed -n 's/.*->[0-9]*->\([0-9]*\) MB.*/\1/p' <<<"$gcline")
	heap=${heap:-?}
	log "  gateway RSS $(mib "$rss_online") MiB, $threads threads, live heap at the last GC $heap MB"
	start_counter "$name" $((OBS_WINDOW_S + 10 + DRAIN_S))
	start_sampler "$GW_PID" "$name"
	d0=$(dropped_now)
	q0=$(grep -c 'client store quota reached' "$TMP/gateway-$name.log" || true)
	w0=$(now_us)
	c0=$(cpu_ticks "$GW_PID")
	o0=$(cpu_ticks "$obs_pid")
	kill -USR1 "$obs_pid"
	for _ in $(seq 1 $(((OBS_WINDOW_S + 10) * 10))); do
		[[ -s $TMP/$name.window.json ]] && break
		kill -0 "$obs_pid" 2>/dev/null || break
		sleep 0.1
	done
	c1=$(cpu_ticks "$GW_PID")
	o1=$(cpu_ticks "$obs_pid")
	w1=$(now_us)
	[[ -s $TMP/$name.window.json ]] || {
		cat "$TMP/$name.obs.log" >&2
		die "coapobs wrote no window result"
	}
	wait_counter
	stop_sampler "$name"
	gateway_alive "$name"
	d1=$(dropped_after "$(now_us)")
	q1=$(grep -c 'client store quota reached' "$TMP/gateway-$name.log" || true)
	if ((q1 > q0)); then
		NOTES+=("observe $n: the built-in broker also logged $((q1 - q0)) 'client store quota reached' lines (rate-limited, each for some notifications dropped at the counting subscriber's in-flight quota, which \$SYS does not count; the log's dropped_total includes them).")
	fi
	# a new subscriber to every availability topic should get N retained "online"
	"$BIN/mqttcount" -broker "$BROKER_URL" -topic "$GATEWAY_ID/coap/+/availability" -qos 1 -duration 2s -json \
		>"$TMP/$name.avail.json" 2>"$TMP/$name.avail.log" || true
	avail=$(jget "$TMP/$name.avail.json" messages)
	log "  a new subscriber to the availability topics got $avail retained messages of $n"
	local wj=$TMP/$name.window.json mj=$TMP/$name.mqtt.json sent unique lost
	sent=$(jget "$wj" sent)
	unique=$(jget "$mj" unique)
	lost=$((sent - unique))
	((lost < 0)) && lost=0
	if [[ $(jget "$mj" stop) == duration ]]; then
		NOTES+=("observe $n: delivery had not ended ${DRAIN_S}s after the window; notifications still queued count as lost.")
	fi
	local offered
	offered=$(awk -v n="$n" -v p="$period" 'BEGIN { x = p + 0; if (p ~ /ms$/) x /= 1000; else if (p ~ /m$/) x *= 60; printf "%.0f", n / x }')
	OBS_ROWS+=("| $n | $period | $offered | ${t_online} | $sent | $(int "$(jget "$wj" rate)") | $unique | $lost | $(drop_delta "$d0" "$d1") | $(jget "$mj" duplicates) | $(jget "$mj" reordered) | $(int "$(jget "$mj" rate)") | $(ms "$(jget "$mj" p50_us)") | $(ms "$(jget "$mj" p99_us)") | $(cpu_pct "$c0" "$c1" "$w0" "$w1") | $(cpu_pct "$o0" "$o1" "$w0" "$w1") | $(mib "$rss_online") | $heap | $(mib "$(<"$TMP/$name.rss")") | $threads | $avail |")
	MEM_ROWS+=("$n $rss_online $threads $heap")
	log "  window: sent $sent, delivered $unique, lost $lost (broker dropped $(drop_delta "$d0" "$d1") for the subscriber); gateway CPU $(cpu_pct "$c0" "$c1" "$w0" "$w1") %"
	stop_gateway
	stop_pid "$obs_pid"
}

observe obs-small "$OBS" "$OBS_PERIOD"
((OBS_BIG > 0)) && observe obs-big "$OBS_BIG" "$OBS_BIG_PERIOD"
UPTIME_AFTER=$(uptime)

# ---------------------------------------------------------------------------
cat <<EOF

## CoAP adapter benchmark

$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) CPUs, $(go env GOVERSION).
Load average before: ${UPTIME_BEFORE##*load average: }; after: ${UPTIME_AFTER##*load average: }.
Counting: mqttcount subscribed to \`$GATEWAY_ID/coap/+\` (readings, not availability) at QoS 1 on the built-in broker (no uplink); route qos 1.

### POSTs/s: $CLIENTS clients over UDP, $DTLS_CLIENTS DTLS sessions (saturating, ${DURATION_S}s per run)

$SIZE-byte JSON payloads, one device per client; CON: one request per client at a time; NON: $WINDOW outstanding per client.
*accepted* = 2.xx responses; *lost* = accepted − delivered to the counting subscriber; *dropped by the broker* = the built-in broker's \`\$SYS/broker/messages/dropped\` over the run (messages it dropped for a subscriber that did not read fast enough: its pending-write queue full); *e2e* = CoAP send → MQTT receive; *CPU* = gateway utime + stime over the run, % of one core; *setup* = dialing (and handshaking) all clients before the run.

| transport | CoAP | clients | sent | req/s | accepted (2.xx) | not accepted | timeouts | delivered | lost | of which dropped by the broker | dups | delivered msg/s | CoAP p50 ms | CoAP p99 ms | e2e p50 ms | e2e p99 ms | gateway CPU % | RSS max MiB | setup s |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$(printf '%s\n' "${POST_ROWS[@]}")

Gateway idle (plain + DTLS listener, no device): RSS $(mib "$RSS_IDLE") MiB, $THREADS_IDLE threads; $THREADS_POST threads after the runs.

### Observe: N resources on one coapobs socket, the gateway observing each ([[coap.device]], one connection per device)

Non-confirmable notifications; counted window ${OBS_WINDOW_S}s. *lost* = sent − delivered; *dropped by the broker* as above, over the counting subscriber's whole life (it also receives the uncounted notifications around the window). *online s* = gateway start → all N devices online; *RSS online* = VmRSS 3 s after all were online; *live heap* = the Go heap after the last GC before that (GODEBUG=gctrace=1); *retained availability received* = retained \`online\` messages a new subscriber to \`$GATEWAY_ID/coap/+/availability\` got within 2 s (N expected); *CPU* over the counted window, % of one core.

| N | period | offered/s | online s | sent | sent/s | delivered | lost | of which dropped by the broker | dups | reordered | delivered msg/s | e2e p50 ms | e2e p99 ms | gateway CPU % | coapobs CPU % | RSS online MiB | live heap MB | RSS max MiB | threads | retained availability received |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$(printf '%s\n' "${OBS_ROWS[@]}")
EOF
if ((${#MEM_ROWS[@]} == 2)); then
	read -r n1 r1 _ <<<"${MEM_ROWS[0]}"
	read -r n2 r2 _ <<<"${MEM_ROWS[1]}"
	echo
	echo "Memory per observed device: ($(mib "$r2") − $(mib "$r1") MiB) / ($n2 − $n1) = $(awk -v a="$r1" -v b="$r2" -v x="$n1" -v y="$n2" 'BEGIN { printf "%.1f", (b - a) / (y - x) }') KiB."
fi
if ((${#NOTES[@]} > 0)); then
	echo
	printf -- '- %s\n' "${NOTES[@]}"
fi
log "done"
