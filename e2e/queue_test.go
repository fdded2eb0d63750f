package e2e

// End-to-end tests of the durable offline queue (queue/, docs/operations.md
// "The offline queue"): the real gateway binary, mosquitto as the uplink,
// coapload and coap-client as devices, mqttcount and mosquitto_sub as
// subscribers of the uplink.
//
// Where the uplink has to be "down" while a subscriber already listens
// there, the gateway reaches mosquitto through testpeer.Proxy, which refuses
// connections while down; where the broker itself is stopped, the
// subscriber keeps a persistent session on a mosquitto with persistence.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/internal/testpeer"
)

// TestQueueUplinkOutageDeliversEveryAckedReadingInOrder streams confirmable
// readings from four devices at 200/s while the uplink mosquitto is stopped
// for 4 s and started again on the same port: every reading the gateway
// acknowledged reaches a subscriber of the uplink, in order per device.
// With MQTT 5 and with MQTT 3.1.1 (protocol = 4, which has no seq user
// property).
func TestQueueUplinkOutageDeliversEveryAckedReadingInOrder(t *testing.T) {
	forUplinkProtocols(t, testQueueUplinkOutage)
}

func testQueueUplinkOutage(t *testing.T, proto int) {
	up := testpeer.StartPersistentMosquitto(t)
	sub := startPropSub(t, up.Port, "gw-test/coap/#", fmt.Sprintf("e2e-outage-%d", time.Now().UnixNano()))
	p := freePorts(t)
	g := startGateway(t, queueConfigProto(p, up.URL(), "", proto))

	acked := filepath.Join(t.TempDir(), "acked")
	load := startLoad(t, p.coap, "-clients", "4", "-devices", "4", "-rate", "200", "-duration", "8s",
		"-timeout", "2s", "-pause", "50ms", "-acked", acked)
	time.Sleep(2 * time.Second)
	up.Stop()
	time.Sleep(4 * time.Second)
	up.Start()
	res := load.wait(t, 30*time.Second)
	finished := time.Now()
	t.Logf("coapload: sent %d, 2.xx %d, codes %v, timeouts %d, errors %d", res.Sent, res.OK, res.Codes, res.Timeouts, res.Errors)
	seqs := readSeqFile(t, acked)
	if len(seqs) == 0 || int64(len(seqs)) != res.OK {
		t.Fatalf("acked file has %d seqs, coapload counted %d 2.xx", len(seqs), res.OK)
	}
	// Readings go on being accepted while the uplink is down.
	for code := range res.Codes {
		if code != "2.04" {
			t.Fatalf("codes %v: readings were refused during the outage", res.Codes)
		}
	}
	if res.OK < res.Sent*9/10 {
		t.Fatalf("only %d of %d readings acknowledged", res.OK, res.Sent)
	}

	// Every acknowledged reading arrives.
	want := map[int64]bool{}
	for _, s := range seqs {
		want[s] = true
	}
	var msgs []propMsg
	deadline := time.Now().Add(60 * time.Second)
	for {
		msgs = sub.Msgs()
		got := map[int64]bool{}
		for _, m := range msgs {
			if s, ok := readingSeq(m.Body); ok {
				got[s] = true
			}
		}
		var missing []int64
		for s := range want {
			if !got[s] {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged readings never arrived, e.g. %v", len(missing), len(want), missing[:min(10, len(missing))])
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("all %d acknowledged readings had arrived %v after coapload's last one", len(want), time.Since(finished).Round(time.Millisecond))

	// In order per device (duplicates aside), and every message carries
	// the seq user property, increasing per device too (MQTT 5; MQTT 3.1.1
	// has no user properties).
	seen := map[int64]bool{}
	last := map[string]int64{}
	lastQ := map[string]uint64{}
	reordered := map[string]int{}
	dups := 0
	for _, m := range msgs {
		s, ok := readingSeq(m.Body)
		if !ok {
			t.Fatalf("unexpected message on %s: %q", m.Topic, m.Body)
		}
		q, hasSeq := seqProp(m.Props)
		switch {
		case proto == 4 && hasSeq:
			t.Fatalf("MQTT 3.1.1 message on %s with a user property: props %q", m.Topic, m.Props)
		case proto != 4 && !hasSeq:
			t.Fatalf("message on %s without the seq user property: props %q", m.Topic, m.Props)
		}
		if seen[s] {
			dups++
			continue
		}
		seen[s] = true
		if l, ok := last[m.Topic]; ok && s < l {
			reordered[m.Topic]++
			continue
		}
		if hasSeq {
			if lq, ok := lastQ[m.Topic]; ok && q <= lq {
				t.Fatalf("%s: reading %d has seq property %d after %d", m.Topic, s, q, lq)
			}
			lastQ[m.Topic] = q
		}
		last[m.Topic] = s
	}
	t.Logf("uplink subscriber: %d messages, %d unique, %d duplicates, %d devices", len(msgs), len(seen), dups, len(last))
	if len(reordered) != 0 {
		t.Fatalf("reordered by topic: %v", reordered)
	}
	if len(last) != 4 {
		t.Fatalf("readings of %d devices arrived, want 4", len(last))
	}
	// The outage really happened while readings streamed.
	if n := len(logLines(g.Log(), "uplink connected")); n < 2 {
		t.Fatalf("the gateway connected to the uplink %d time(s), want a reconnect", n)
	}
}

// TestQueueKill9WhileUplinkDownLosesNoAckedReading streams confirmable
// readings while the uplink is unreachable and SIGKILLs the gateway six
// times at random moments, restarting it each time on the same data_dir and
// ports; then the uplink comes up: every reading ever acknowledged to
// coapload arrives. With MQTT 5 and with MQTT 3.1.1.
func TestQueueKill9WhileUplinkDownLosesNoAckedReading(t *testing.T) {
	forUplinkProtocols(t, testQueueKill9WhileUplinkDown)
}

func testQueueKill9WhileUplinkDown(t *testing.T, proto int) {
	broker := testpeer.StartMosquitto(t, 0)
	link := testpeer.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", broker.Port)) // down
	p := freePorts(t)
	cfg := queueConfigProto(p, link.URL(), "", proto)
	g := startGateway(t, cfg)
	var logs []string
	defer func() {
		if t.Failed() {
			for i, l := range logs {
				t.Logf("log of gateway life %d:\n%s", i+1, l)
			}
		}
	}()

	dir := t.TempDir()
	acked := filepath.Join(dir, "acked")
	load := startLoad(t, p.coap, "-clients", "4", "-devices", "4", "-rate", "200", "-duration", "120s",
		"-timeout", "1s", "-pause", "50ms", "-acked", acked+".part")
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	var kills []time.Duration
	for range 6 {
		up := 300*time.Millisecond + time.Duration(rng.Int64N(int64(900*time.Millisecond)))
		time.Sleep(up)
		g.kill() // SIGKILL: no shutdown, as a crash
		kills = append(kills, up)
		logs = append(logs, g.Log())
		g = restartGateway(t, g, cfg)
	}
	time.Sleep(700 * time.Millisecond)
	load.stop()
	res := load.wait(t, 30*time.Second)
	t.Logf("seed %d: killed after %v of uptime each; coapload: sent %d, 2.xx %d, codes %v, timeouts %d, errors %d, reconnects %d",
		seed, kills, res.Sent, res.OK, res.Codes, res.Timeouts, res.Errors, res.Reconnects)
	if res.OK == 0 {
		t.Fatal("no reading was acknowledged")
	}
	if err := os.Rename(acked+".part", acked); err != nil {
		t.Fatal(err)
	}

	count := startCount(t, broker.Port, acked, 20*time.Second, 120*time.Second)
	start := time.Now()
	link.Start()
	cr := count.wait(t, 150*time.Second)
	drain := time.Since(start)
	logs = append(logs, g.Log())
	var torn int64
	for _, l := range logs {
		for _, line := range logLines(l, "offline queue opened") {
			torn += logInt(t, line, "torn_bytes")
		}
	}
	t.Logf("mqttcount: stop %s, expected_acked %d, missing_acked %d %v, unique %d, duplicates %d, reordered %v; backlog drained in %v; torn bytes truncated at restarts: %d",
		cr.Stop, cr.ExpectedAcked, cr.MissingAcked, cr.MissingAckedExamples, cr.Unique, cr.Duplicates, cr.ReorderedByTopic,
		drain.Round(time.Millisecond), torn)
	if cr.ExpectedAcked == 0 || cr.ExpectedAcked != res.OK {
		t.Fatalf("mqttcount expected %d acknowledged seqs, coapload had %d (%s)", cr.ExpectedAcked, res.OK, cr.Error)
	}
	if cr.MissingAcked != 0 {
		t.Fatalf("%d acknowledged readings lost across the kills, e.g. %v", cr.MissingAcked, cr.MissingAckedExamples)
	}
}

// TestQueuePlantedDamageIsSkippedAndReported stops a gateway holding N
// readings (uplink down), then damages its queue as a crash and a bad card
// would: a torn record at the end of the last segment and one flipped byte
// inside a record in the middle. The gateway starts, reports both, and
// delivers every other reading: exactly N-1.
func TestQueuePlantedDamageIsSkippedAndReported(t *testing.T) {
	const n = 40
	broker := testpeer.StartMosquitto(t, 0)
	link := testpeer.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", broker.Port)) // down
	p := freePorts(t)
	cfg := queueConfig(p, link.URL(), "")
	g := startGateway(t, cfg)
	acked := filepath.Join(t.TempDir(), "acked")
	res := startLoad(t, p.coap, "-clients", "1", "-count", strconv.Itoa(n), "-timeout", "5s", "-acked", acked).wait(t, 60*time.Second)
	if res.Sent != n || res.OK != n {
		t.Fatalf("coapload: %+v, want %d readings acknowledged", res, n)
	}
	if _, err := g.stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, g.Log())
	}

	qdir := filepath.Join(g.dir, "data", "queue")
	segs := segmentFiles(t, qdir)
	if len(segs) != 1 {
		t.Fatalf("segment files %v, want one", segs)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	recs := parseSegment(t, b)
	if len(recs) != n {
		t.Fatalf("the segment holds %d records, want %d", len(recs), n)
	}
	// Flip a byte in the payload of the middle record.
	victim := recs[n/2]
	victimSeq, ok := readingSeq(string(victim.Payload))
	if !ok {
		t.Fatalf("record %d payload %q", victim.Seq, victim.Payload)
	}
	at := victim.Off + recHeaderLen + len(victim.Topic) + len(victim.Payload)/2
	b[at] ^= 0xff
	// A torn record: the first half of what would have been the next one.
	lastRec := recs[n-1]
	next := encodeRecord(lastRec.Seq+1, time.Now(), lastRec.Topic, lastRec.Payload)
	tornLen := len(next) / 2
	b = append(b, next[:tornLen]...)
	if err := os.WriteFile(segs[0], b, 0o640); err != nil {
		t.Fatal(err)
	}
	t.Logf("flipped byte %d (record seq %d, reading %d); appended %d bytes of a record", at, victim.Seq, victimSeq, tornLen)

	count := startCount(t, broker.Port, acked, 5*time.Second, 60*time.Second)
	link.Start()
	g = restartGateway(t, g, cfg)
	cr := count.wait(t, 90*time.Second)
	log := g.Log()
	t.Logf("mqttcount: stop %s, expected_acked %d, unique %d, missing_acked %d %v, duplicates %d",
		cr.Stop, cr.ExpectedAcked, cr.Unique, cr.MissingAcked, cr.MissingAckedExamples, cr.Duplicates)

	torn := logLines(log, "offline queue: torn record at the end of the last segment truncated")
	if len(torn) != 1 || logInt(t, torn[0], "bytes") != int64(tornLen) {
		t.Fatalf("torn tail report %q, want one of %d bytes\n%s", torn, tornLen, log)
	}
	skipped := logLines(log, "offline queue: damaged records skipped")
	if len(skipped) != 1 || logInt(t, skipped[0], "records_lost") != 1 || logInt(t, skipped[0], "offset") != int64(victim.Off) {
		t.Fatalf("damage report %q, want one record lost at offset %d\n%s", skipped, victim.Off, log)
	}
	opened := logLines(log, "offline queue opened")
	if len(opened) != 1 || logInt(t, opened[0], "messages") != n-1 || logInt(t, opened[0], "damaged_records") != 1 ||
		logInt(t, opened[0], "torn_bytes") != int64(tornLen) || logInt(t, opened[0], "damaged_files") != 0 {
		t.Fatalf("open report %q, want messages=%d damaged_records=1 torn_bytes=%d damaged_files=0", opened, n-1, tornLen)
	}
	if cr.ExpectedAcked != n || cr.Unique != n-1 || cr.MissingAcked != 1 ||
		len(cr.MissingAckedExamples) != 1 || cr.MissingAckedExamples[0] != victimSeq {
		t.Fatalf("want the %d readings but reading %d delivered; mqttcount %+v", n-1, victimSeq, cr)
	}
}

// TestQueueBoundsCountEveryDrop fills a 64 KiB queue while the uplink is
// down. drop_oldest: every reading is accepted, and the readings that never
// arrive are exactly those the log reports as dropped. drop_newest:
// readings beyond the bound get 5.03, and every 2.04'd one arrives. With
// MQTT 5 and with MQTT 3.1.1 (one drop_oldest size: the queue is the same).
func TestQueueBoundsCountEveryDrop(t *testing.T) { forUplinkProtocols(t, testQueueBounds) }

func testQueueBounds(t *testing.T, proto int) {
	// 64 KiB is the smallest segment file, so the bound is a single
	// segment; 256 KiB holds four.
	for _, c := range []struct {
		maxBytes string
		readings int
	}{{"64KiB", 2000}, {"256KiB", 5000}} {
		if proto == 4 && c.maxBytes != "64KiB" {
			continue
		}
		t.Run("drop_oldest_"+c.maxBytes, func(t *testing.T) { testDropOldest(t, c.maxBytes, c.readings, proto) })
	}

	t.Run("drop_newest", func(t *testing.T) {
		broker := testpeer.StartMosquitto(t, 0)
		link := testpeer.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", broker.Port)) // down
		p := freePorts(t)
		cfg := queueConfigProto(p, link.URL(), "max_bytes = \"64KiB\"\nwhen_full = \"drop_newest\"", proto)
		g := startGateway(t, cfg)
		acked := filepath.Join(t.TempDir(), "acked")
		res := startLoad(t, p.coap, "-clients", "4", "-count", "1500", "-timeout", "5s", "-acked", acked+".part").wait(t, 90*time.Second)
		t.Logf("coapload: sent %d, 2.xx %d, codes %v, timeouts %d", res.Sent, res.OK, res.Codes, res.Timeouts)
		if err := os.Rename(acked+".part", acked); err != nil {
			t.Fatal(err)
		}
		refused := res.Codes["5.03"]
		if res.OK == 0 || refused == 0 || res.OK+refused != res.Sent {
			t.Fatalf("want 2.04 until the queue is full and 5.03 after, nothing else: sent %d, codes %v, timeouts %d",
				res.Sent, res.Codes, res.Timeouts)
		}
		count := startCount(t, broker.Port, acked, 30*time.Second, 90*time.Second)
		link.Start()
		cr := count.wait(t, 120*time.Second)
		if _, err := g.stop(); err != nil {
			t.Fatalf("stop: %v", err)
		}
		dropped, lines := droppedInLog(t, g.Log())
		t.Logf("mqttcount: stop %s, expected_acked %d, unique %d, missing_acked %d, duplicates %d; dropped in the log: %d in %d line(s)",
			cr.Stop, cr.ExpectedAcked, cr.Unique, cr.MissingAcked, cr.Duplicates, dropped, len(lines))
		if cr.ExpectedAcked != res.OK || cr.MissingAcked != 0 || cr.Stop != "acked" {
			t.Fatalf("every 2.04'd reading should arrive: %+v", cr)
		}
		if dropped != refused {
			t.Fatalf("%d readings got 5.03, the log reports %d dropped", refused, dropped)
		}
	})
}

var statsMessagesRE = regexp.MustCompile(`(?m)^messages\s+(\d+) undelivered`)

// TestQueueCLIStatsAndPeek: gateway queue stats and peek read a stopped
// gateway's queue, and refuse (exit 1) while it runs.
func TestQueueCLIStatsAndPeek(t *testing.T) {
	const n = 25
	p := freePorts(t)
	// An uplink that refuses (a port held by a proxy never started, so no
	// test running in parallel can take it): everything stays queued.
	g := startGateway(t, queueConfig(p, testpeer.NewProxy(t, "127.0.0.1:9").URL(), ""))
	res := startLoad(t, p.coap, "-clients", "1", "-count", strconv.Itoa(n), "-timeout", "5s").wait(t, 60*time.Second)
	if res.OK != n {
		t.Fatalf("coapload: %+v", res)
	}

	for _, args := range [][]string{{"queue", "stats", "-c", "gateway.toml"}, {"queue", "peek", "-c", "gateway.toml", "-n", "3"}} {
		out, errOut, code := runGateway(t, g.dir, nil, args...)
		if code != 1 || !strings.Contains(errOut, "in use by another process") || !strings.Contains(errOut, "Stop the gateway first") {
			t.Fatalf("%v while the gateway runs: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
		}
		t.Logf("%v while running: %s", args, strings.TrimSpace(errOut))
	}

	if _, err := g.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	out, errOut, code := runGateway(t, g.dir, nil, "queue", "stats", "-c", "gateway.toml")
	if code != 0 {
		t.Fatalf("queue stats: exit %d\n%s", code, errOut)
	}
	t.Logf("queue stats:\n%s", out)
	m := statsMessagesRE.FindStringSubmatch(out)
	if m == nil || m[1] != strconv.Itoa(n) {
		t.Fatalf("queue stats does not report %d messages:\n%s", n, out)
	}
	if !regexp.MustCompile(`(?m)^\s+` + strconv.Itoa(n) + `\s+gw-test/coap/dev0$`).MatchString(out) {
		t.Fatalf("queue stats does not list %d messages of gw-test/coap/dev0:\n%s", n, out)
	}

	out, errOut, code = runGateway(t, g.dir, nil, "queue", "peek", "-c", "gateway.toml", "-n", "3")
	if code != 0 {
		t.Fatalf("queue peek: exit %d\n%s", code, errOut)
	}
	t.Logf("queue peek -n 3:\n%s", out)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("queue peek -n 3 printed %d lines:\n%s", len(lines), out)
	}
	for i, line := range lines {
		// SEQ TIME qos=1 retain=false TOPIC "PAYLOAD"
		f := strings.SplitN(line, " ", 6)
		if len(f) != 6 || f[0] != strconv.Itoa(i+1) || f[2] != "qos=1" || f[3] != "retain=false" || f[4] != "gw-test/coap/dev0" {
			t.Fatalf("peek line %d: %q", i, line)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[1]); err != nil {
			t.Fatalf("peek line %d: time %q: %v", i, f[1], err)
		}
		payload, err := strconv.Unquote(f[5])
		if err != nil {
			t.Fatalf("peek line %d: payload %s: %v", i, f[5], err)
		}
		if s, ok := readingSeq(payload); !ok || s != int64(i) {
			t.Fatalf("peek line %d: payload %s, want coapload's reading %d (in order)", i, payload, i)
		}
	}
	// Reading changed nothing.
	out2, _, _ := runGateway(t, g.dir, nil, "queue", "stats", "-c", "gateway.toml")
	if m := statsMessagesRE.FindStringSubmatch(out2); m == nil || m[1] != strconv.Itoa(n) {
		t.Fatalf("after peek, queue stats reports:\n%s", out2)
	}
}

// TestQueueSeqUserPropertyContinuesAcrossRestarts: every uplink message
// carries the user property seq=1,2,3,... in order, and the numbering goes
// on after a restart (SIGTERM) and after a crash (kill -9).
func TestQueueSeqUserPropertyContinuesAcrossRestarts(t *testing.T) {
	up := testpeer.StartMosquitto(t, 0)
	p := freePorts(t)
	cfg := queueConfig(p, up.URL(), "")
	g := startGateway(t, cfg)
	sub := startPropSub(t, up.Port, "gw-test/coap/#", "")

	sent := 0
	send := func(k int) {
		t.Helper()
		for range k {
			if code, body := coap(t, p.coap, "post", "/meter", "50", fmt.Sprintf(`{"n":%d}`, sent)); code != "2.04" {
				t.Fatalf("reading %d: %s %q", sent, code, body)
			}
			sent++
		}
	}
	// check waits for the readings sent so far and checks that reading i
	// carries seq=i+1 (the first at 1, one more per accepted message).
	check := func(phase string) {
		t.Helper()
		msgs := sub.waitN(t, sent, 20*time.Second)
		if len(msgs) != sent {
			t.Fatalf("%s: %d messages for %d readings: %v", phase, len(msgs), sent, msgs)
		}
		var got []string
		for i, m := range msgs {
			got = append(got, m.Props)
			var v struct{ N int }
			if err := json.Unmarshal([]byte(m.Body), &v); err != nil || v.N != i {
				t.Fatalf("%s: message %d is %q, want reading %d", phase, i, m.Body, i)
			}
			if q, ok := seqProp(m.Props); !ok || q != uint64(i+1) {
				t.Fatalf("%s: reading %d carries %q, want seq:%d; all: %v", phase, i, m.Props, i+1, got)
			}
		}
		t.Logf("%s: %v", phase, got)
	}

	send(5)
	check("first start")

	if _, err := g.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	g = restartGateway(t, g, cfg)
	send(5)
	check("after SIGTERM and restart")

	// The delivered position is saved within a second; kill well after
	// that, so that nothing is sent twice and the numbering is exact.
	time.Sleep(2500 * time.Millisecond)
	g.kill() // SIGKILL: no shutdown, as a crash
	restartGateway(t, g, cfg)
	send(3)
	check("after kill -9 and restart")
}

// testDropOldest fills a queue of maxBytes with drop_oldest while the uplink
// is down, then brings the uplink up: every reading is accepted, and the
// acknowledged readings that never arrive are exactly those the log
// reports as dropped.
func testDropOldest(t *testing.T, maxBytes string, readings, proto int) {
	broker := testpeer.StartMosquitto(t, 0)
	link := testpeer.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", broker.Port)) // down
	p := freePorts(t)
	cfg := queueConfigProto(p, link.URL(), fmt.Sprintf("max_bytes = %q\nwhen_full = \"drop_oldest\"", maxBytes), proto)
	g := startGateway(t, cfg)
	acked := filepath.Join(t.TempDir(), "acked")
	res := startLoad(t, p.coap, "-clients", "4", "-count", strconv.Itoa(readings), "-timeout", "5s", "-acked", acked+".part").wait(t, 90*time.Second)
	t.Logf("coapload: sent %d, 2.xx %d, codes %v, timeouts %d", res.Sent, res.OK, res.Codes, res.Timeouts)
	if err := os.Rename(acked+".part", acked); err != nil {
		t.Fatal(err)
	}
	if _, err := g.stop(); err != nil { // the last drop report comes at shutdown
		t.Fatalf("stop: %v", err)
	}
	log1 := g.Log()

	count := startCount(t, broker.Port, acked, 5*time.Second, 90*time.Second)
	link.Start()
	g = restartGateway(t, g, cfg)
	cr := count.wait(t, 120*time.Second)
	if _, err := g.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	dropped, lines := droppedInLog(t, log1+g.Log())
	t.Logf("mqttcount: stop %s, expected_acked %d, unique %d, missing_acked %d, duplicates %d; dropped in the log: %d in %d line(s)",
		cr.Stop, cr.ExpectedAcked, cr.Unique, cr.MissingAcked, cr.Duplicates, dropped, len(lines))
	for _, l := range lines {
		t.Log(l)
	}
	if refused := res.Codes["5.03"]; refused > 0 {
		t.Errorf("drop_oldest refused %d readings with 5.03 (as drop_newest would) instead of dropping the oldest; the log counts them as dropped",
			refused)
	}
	if res.OK != res.Sent {
		t.Errorf("%d of %d readings acknowledged: codes %v, timeouts %d", res.OK, res.Sent, res.Codes, res.Timeouts)
	}
	if cr.ExpectedAcked != res.OK || cr.ExpectedAcked == 0 {
		t.Fatalf("mqttcount expected %d acknowledged seqs, coapload had %d", cr.ExpectedAcked, res.OK)
	}
	if cr.MissingAcked != dropped {
		t.Fatalf("%d acknowledged readings never arrived, the log reports %d dropped", cr.MissingAcked, dropped)
	}
	if dropped == 0 {
		t.Fatalf("nothing was dropped: %d readings did not fill a %s queue", res.Sent, maxBytes)
	}
}
