package e2e

// Helpers of the offline queue tests (queue_test.go): the load and counting
// tools as processes, a network path to the uplink that can be cut, a
// mosquitto that keeps its sessions across a restart, a subscriber that
// sees MQTT 5 user properties, and readers of the gateway's log and of the
// queue's segment files.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/causeway/causeway/internal/testpeer"
)

// queueConfig is baseConfig with an uplink at uplinkURL and a [queue] block.
func queueConfig(p ports, uplinkURL, queueKeys string) string {
	return queueConfigProto(p, uplinkURL, queueKeys, 0)
}

// queueConfigProto is queueConfig with [uplink] protocol = proto (0: the
// default, MQTT 5).
func queueConfigProto(p ports, uplinkURL, queueKeys string, proto int) string {
	protocol := ""
	if proto != 0 {
		protocol = fmt.Sprintf("protocol = %d\n", proto)
	}
	return baseConfig(p, fmt.Sprintf(`
[uplink]
url = %q
%s
[queue]
%s
`, uplinkURL, protocol, queueKeys))
}

// forUplinkProtocols runs f as one subtest per uplink protocol: "v5"
// (protocol = 5, the default) and "v311" (protocol = 4, MQTT 3.1.1).
func forUplinkProtocols(t *testing.T, f func(t *testing.T, proto int)) {
	t.Helper()
	for _, p := range []struct {
		name  string
		proto int
	}{{"v5", 5}, {"v311", 4}} {
		t.Run(p.name, func(t *testing.T) { f(t, p.proto) })
	}
}

// restartGateway starts a gateway again in the directory of g (same
// config, data_dir and ports) and waits until it is ready.
func restartGateway(t *testing.T, g *gw, config string) *gw {
	t.Helper()
	n := startGatewayIn(t, g.dir, config)
	n.waitReady()
	return n
}

// ---- coapload ----------------------------------------------------------

// loadResult is the part of coapload's -json summary the tests use.
type loadResult struct {
	Sent       int64            `json:"sent"`
	Responses  int64            `json:"responses"`
	OK         int64            `json:"ok"`
	Codes      map[string]int64 `json:"codes"`
	Timeouts   int64            `json:"timeouts"`
	Errors     int64            `json:"errors"`
	ConnErrors int64            `json:"conn_errors"`
	Reconnects int64            `json:"reconnects"`
	Acked      int64            `json:"acked"`
	FirstError string           `json:"first_error"`
}

// loadProc is a running coapload.
type loadProc struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	errOut bytes.Buffer
	done   chan struct{}
	err    error
}

// startLoad runs coapload against the gateway's CoAP port with args.
func startLoad(t *testing.T, coapPort int, args ...string) *loadProc {
	t.Helper()
	bin := buildTool(t, "../cmd/coapload")
	args = append([]string{"-url", fmt.Sprintf("coap://127.0.0.1:%d", coapPort), "-json"}, args...)
	l := &loadProc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	l.cmd.Stdout, l.cmd.Stderr = &l.out, &l.errOut
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := l.cmd.Start(); err != nil {
		t.Fatalf("start coapload: %v", err)
	}
	go func() { l.err = l.cmd.Wait(); close(l.done) }()
	t.Cleanup(func() {
		select {
		case <-l.done:
		default:
			_ = l.cmd.Process.Kill()
			<-l.done
		}
	})
	return l
}

// stop asks coapload to end its run (SIGTERM): it stops sending, waits for
// what is in flight and writes its summary and -acked file.
func (l *loadProc) stop() { _ = l.cmd.Process.Signal(syscall.SIGTERM) }

// wait waits up to d for coapload to exit and returns its summary.
func (l *loadProc) wait(t *testing.T, d time.Duration) loadResult {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(d):
		_ = l.cmd.Process.Kill()
		<-l.done
		t.Fatalf("coapload did not finish within %v\n%s", d, l.errOut.String())
	}
	if l.err != nil {
		t.Fatalf("coapload: %v\n%s", l.err, l.errOut.String())
	}
	var r loadResult
	if err := json.Unmarshal(l.out.Bytes(), &r); err != nil {
		t.Fatalf("coapload output %q: %v\n%s", l.out.String(), err, l.errOut.String())
	}
	return r
}

// readSeqFile reads a coapload -acked file: one decimal seq per line.
func readSeqFile(t *testing.T, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		n, err := strconv.ParseInt(line, 10, 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		seqs = append(seqs, n)
	}
	return seqs
}

// ---- mqttcount ---------------------------------------------------------

// countResult is the part of mqttcount's -json summary the tests use.
type countResult struct {
	Stop                 string           `json:"stop"`
	Messages             int64            `json:"messages"`
	Unique               int64            `json:"unique"`
	Duplicates           int64            `json:"duplicates"`
	Reordered            int64            `json:"reordered"`
	ReorderedByTopic     map[string]int64 `json:"reordered_by_topic"`
	ExpectedAcked        int64            `json:"expected_acked"`
	MissingAcked         int64            `json:"missing_acked"`
	MissingAckedExamples []int64          `json:"missing_acked_examples"`
	Error                string           `json:"error"`
}

// countProc is a running mqttcount.
type countProc struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	errOut bytes.Buffer
	done   chan struct{}
	err    error
}

// startCount subscribes mqttcount to gw-test/coap/# on the broker at
// brokerPort, expecting the seqs of expectFile (which may appear later), and
// returns once it is subscribed. It stops when every seq of the file has
// arrived, after idle without a message (once one arrived), or after limit.
func startCount(t *testing.T, brokerPort int, expectFile string, idle, limit time.Duration) *countProc {
	t.Helper()
	bin := buildTool(t, "../cmd/mqttcount")
	ready := filepath.Join(t.TempDir(), "count-ready")
	c := &countProc{done: make(chan struct{})}
	c.cmd = exec.Command(bin, "-broker", fmt.Sprintf("mqtt://127.0.0.1:%d", brokerPort), "-topic", "gw-test/coap/#",
		"-qos", "1", "-expect-file", expectFile, "-idle", idle.String(), "-duration", limit.String(),
		"-ready-file", ready, "-json")
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.errOut
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start mqttcount: %v", err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			return c
		}
		select {
		case <-c.done:
			t.Fatalf("mqttcount exited before subscribing: %v\n%s", c.err, c.errOut.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("mqttcount did not subscribe within 10s")
		}
	}
}

// wait waits up to d for mqttcount to end and returns its summary.
func (c *countProc) wait(t *testing.T, d time.Duration) countResult {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(d):
		_ = c.cmd.Process.Kill()
		<-c.done
		t.Fatalf("mqttcount did not finish within %v\n%s", d, c.errOut.String())
	}
	if c.err != nil {
		t.Fatalf("mqttcount: %v\n%s", c.err, c.errOut.String())
	}
	var r countResult
	if err := json.Unmarshal(c.out.Bytes(), &r); err != nil {
		t.Fatalf("mqttcount output %q: %v\n%s", c.out.String(), err, c.errOut.String())
	}
	return r
}

// ---- a subscriber that shows MQTT 5 user properties ---------------------

// propMsg is one message as mosquitto_sub -V 5 printed it.
type propMsg struct {
	Topic string
	Props string // %P: user properties as key:value
	Body  string
}

// propSub is a mosquitto_sub -V 5 printing '%t<TAB>%P<TAB>%p'.
type propSub struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	msgs []propMsg
	done chan struct{}
}

// startPropSub subscribes to filter at QoS 1 on the broker at port and
// returns once the subscription is live. With a client id, the session is
// persistent (-c, never expiring): mosquitto_sub reconnects by itself after
// the broker restarts and gets what was queued for it meanwhile.
func startPropSub(t *testing.T, port int, filter, clientID string) *propSub {
	t.Helper()
	probeTopic := fmt.Sprintf("e2e-probe/%d", time.Now().UnixNano())
	args := []string{"-V", "5", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-q", "1",
		"-t", filter, "-t", probeTopic, "-F", "%t\t%P\t%p"}
	if clientID != "" {
		args = append(args, "-c", "-i", clientID)
	}
	s := &propSub{cmd: exec.Command(testpeer.Bin(t, "mosquitto_sub"), args...), done: make(chan struct{})}
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start mosquitto_sub: %v", err)
	}
	ready := make(chan struct{})
	go func() {
		defer close(s.done)
		var once sync.Once
		r := bufio.NewReaderSize(pr, 1<<20)
		for {
			line, err := r.ReadString('\n')
			if line = strings.TrimSuffix(line, "\n"); line != "" {
				parts := strings.SplitN(line, "\t", 3)
				if len(parts) == 3 {
					if parts[0] == probeTopic {
						once.Do(func() { close(ready) })
					} else {
						s.mu.Lock()
						s.msgs = append(s.msgs, propMsg{Topic: parts[0], Props: parts[1], Body: parts[2]})
						s.mu.Unlock()
					}
				}
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
		_ = s.cmd.Wait()
	})
	pub := testpeer.Bin(t, "mosquitto_pub")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_ = exec.Command(pub, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-t", probeTopic, "-m", "x").Run()
		select {
		case <-ready:
			return s
		case <-s.done:
			t.Fatalf("mosquitto_sub on port %d exited", port)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto_sub on port %d never became ready", port)
		}
	}
}

// Msgs returns a copy of what arrived so far.
func (s *propSub) Msgs() []propMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]propMsg(nil), s.msgs...)
}

// waitN waits up to d until at least n messages arrived and returns them.
func (s *propSub) waitN(t *testing.T, n int, d time.Duration) []propMsg {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		m := s.Msgs()
		if len(m) >= n {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages within %v: %v", len(m), n, d, m)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// seqProp returns the value of the user property seq ("seq:N" in %P).
func seqProp(props string) (uint64, bool) {
	for _, f := range strings.Fields(props) {
		if v, ok := strings.CutPrefix(f, "seq:"); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// readingSeq returns the coapload seq of a published reading's JSON payload.
func readingSeq(body string) (int64, bool) {
	var v struct {
		Seq *json.Number `json:"seq"`
	}
	d := json.NewDecoder(strings.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&v); err != nil || v.Seq == nil {
		return 0, false
	}
	n, err := v.Seq.Int64()
	if err != nil {
		f, ferr := v.Seq.Float64()
		if ferr != nil {
			return 0, false
		}
		n = int64(f)
	}
	return n, true
}

// ---- the gateway's log -------------------------------------------------

// logLines returns the lines of log whose msg starts with msg.
func logLines(log, msg string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, `msg="`+msg) || strings.Contains(line, "msg="+msg) {
			out = append(out, line)
		}
	}
	return out
}

var logAttrRE = regexp.MustCompile(`(?:^| )([a-z_]+)=("(?:[^"\\]|\\.)*"|\S*)`)

// logAttr returns the value of key in an slog text line.
func logAttr(line, key string) (string, bool) {
	for _, m := range logAttrRE.FindAllStringSubmatch(line, -1) {
		if m[1] == key {
			v := m[2]
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
			return v, true
		}
	}
	return "", false
}

// logInt returns key of line as an integer, failing the test otherwise.
func logInt(t *testing.T, line, key string) int64 {
	t.Helper()
	v, ok := logAttr(line, key)
	if !ok {
		t.Fatalf("log line without %s: %s", key, line)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("log line: %s=%q: %v", key, v, err)
	}
	return n
}

// droppedInLog sums dropped= of every "offline queue dropped messages" line.
func droppedInLog(t *testing.T, log string) (sum int64, lines []string) {
	t.Helper()
	lines = logLines(log, "offline queue dropped messages")
	for _, l := range lines {
		sum += logInt(t, l, "dropped")
	}
	return sum, lines
}

// ---- the queue's segment files (queue/format.go) ------------------------

const (
	segMagic      = "CWQSEG1\n"
	segHeaderLen  = 16
	recHeaderLen  = 27 // length, crc, seq, time, flags, topic length
	recPrefixLen  = 8  // length + crc
	recFixedLen   = 19 // seq + time + flags + topic length
	segFileSuffix = ".seg"
)

var castagnoliTable = crc32.MakeTable(crc32.Castagnoli)

// segRecord is one record of a segment file as found on disk.
type segRecord struct {
	Off     int // offset of the record in the file
	Size    int
	Seq     uint64
	Topic   string
	Payload []byte
}

// segmentFiles returns the segment files of a queue directory, in order.
func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), segFileSuffix) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out) // %020d names sort by sequence number
	return out
}

// parseSegment decodes every record of a segment file, failing the test on
// anything that is not a well-formed record (the file must be intact).
func parseSegment(t *testing.T, b []byte) []segRecord {
	t.Helper()
	if len(b) < segHeaderLen || string(b[:8]) != segMagic {
		t.Fatalf("not a segment file (%d bytes)", len(b))
	}
	var recs []segRecord
	for off := segHeaderLen; off < len(b); {
		if len(b)-off < recHeaderLen {
			t.Fatalf("segment: %d stray bytes at offset %d", len(b)-off, off)
		}
		body := int(binary.LittleEndian.Uint32(b[off:]))
		size := recPrefixLen + body
		if off+size > len(b) {
			t.Fatalf("segment: record at %d is cut off", off)
		}
		rec := b[off : off+size]
		crc := crc32.Update(0, castagnoliTable, rec[:4])
		crc = crc32.Update(crc, castagnoliTable, rec[recPrefixLen:])
		if crc != binary.LittleEndian.Uint32(rec[4:]) {
			t.Fatalf("segment: record at %d fails its CRC", off)
		}
		tlen := int(binary.LittleEndian.Uint16(rec[recPrefixLen+17:]))
		recs = append(recs, segRecord{
			Off: off, Size: size,
			Seq:     binary.LittleEndian.Uint64(rec[recPrefixLen:]),
			Topic:   string(rec[recHeaderLen : recHeaderLen+tlen]),
			Payload: append([]byte(nil), rec[recHeaderLen+tlen:]...),
		})
		off += size
	}
	return recs
}

// encodeRecord encodes a valid record (QoS 1, not retained).
func encodeRecord(seq uint64, at time.Time, topic string, payload []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(recFixedLen+len(topic)+len(payload)))
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = binary.LittleEndian.AppendUint64(b, uint64(at.UnixNano()))
	b = append(b, 1)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(topic)))
	b = append(b, topic...)
	b = append(b, payload...)
	crc := crc32.Update(0, castagnoliTable, b[:4])
	crc = crc32.Update(crc, castagnoliTable, b[recPrefixLen:])
	binary.LittleEndian.PutUint32(b[4:], crc)
	return b
}
