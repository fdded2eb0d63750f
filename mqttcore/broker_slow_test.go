package mqttcore

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// mosqSub is a mosquitto_sub process printing one topic per line.
type mosqSub struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	topics []string
	done   chan struct{}
}

func startMosqSub(t *testing.T, args ...string) *mosqSub {
	t.Helper()
	bin, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		t.Fatal("mosquitto_sub not found. " + mosquittoHint)
	}
	stdbuf, err := exec.LookPath("stdbuf") // mosquitto_sub's stdout is block-buffered on a pipe
	if err != nil {
		t.Fatal("stdbuf (coreutils) not found")
	}
	s := &mosqSub{cmd: exec.Command(stdbuf, append([]string{"-oL", bin}, append(args, "-F", "%t")...)...), done: make(chan struct{})}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	s.cmd.Stderr = &stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.mu.Lock()
			s.topics = append(s.topics, sc.Text())
			s.mu.Unlock()
		}
		_ = s.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
		_ = s.cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("mosquitto_sub %v stderr: %s", args, stderr.String())
		}
	})
	return s
}

func (s *mosqSub) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.topics)
}

// The test: a real mosquitto_sub is stopped (SIGSTOP: its socket
// buffers fill, it never acknowledges) while another mosquitto_sub receives
// a stream of 20,000 QoS 1 messages of 1 KiB published in-process by the
// gateway. The healthy one gets every message, in order, without delay;
// publishing never blocks; what the stalled one misses is counted; and
// nothing leaks (goleak in TestMain).
func TestBrokerStalledMosquittoSubDoesNotDelayOthers(t *testing.T) {
	users := []BrokerUser{{Name: "sub", PasswordHash: testHash(t, "pw"), Subscribe: []string{"load/#"}}}
	b := startTestBroker(t, BrokerOptions{Users: users})
	host, port := hostPort(t, b.Addr())
	if err := b.Publish("load/ready", []byte("ready"), 1, true); err != nil {
		t.Fatal(err)
	}
	args := []string{"-h", host, "-p", port, "-V", "5", "-q", "1", "-u", "sub", "-P", "pw", "-t", "load/#"}
	stalled := startMosqSub(t, append(args, "-i", "stalled")...)
	healthy := startMosqSub(t, append(args, "-i", "healthy")...)
	waitFor(t, 10*time.Second, "both subscribers", func() bool { return stalled.count() == 1 && healthy.count() == 1 })
	if err := stalled.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}

	const n, batch = 20000, 100
	payload := bytes.Repeat([]byte("x"), 1024)
	var worstPublish, worstBatch time.Duration
	start := time.Now()
	for i := 0; i < n; i += batch {
		t0 := time.Now()
		for j := i; j < i+batch; j++ {
			p0 := time.Now()
			if err := b.Publish(fmt.Sprintf("load/%d", j), payload, 1, false); err != nil {
				t.Fatal(err)
			}
			worstPublish = max(worstPublish, time.Since(p0))
		}
		// The healthy subscriber keeps up with the stream.
		want := 1 + i + batch
		waitFor(t, 10*time.Second, fmt.Sprintf("the healthy subscriber to get message %d", i+batch-1),
			func() bool { return healthy.count() >= want })
		worstBatch = max(worstBatch, time.Since(t0))
	}
	total := time.Since(start)
	st := b.Stats()
	t.Logf("%d x 1 KiB in %s (%.0f msg/s); worst publish %s, worst batch of %d delivered in %s; stalled subscriber got %d; stats %+v",
		n, total, float64(n)/total.Seconds(), worstPublish, batch, worstBatch, stalled.count()-1, st)
	if worstPublish > time.Second {
		t.Errorf("a Publish blocked for %s with a stalled subscriber", worstPublish)
	}
	if worstBatch > 2*time.Second {
		t.Errorf("the healthy subscriber waited %s for a batch of %d", worstBatch, batch)
	}
	healthy.mu.Lock()
	for i, topic := range healthy.topics[1:] {
		if topic != fmt.Sprintf("load/%d", i) {
			healthy.mu.Unlock()
			t.Fatalf("healthy subscriber: message %d is %s", i, topic)
		}
	}
	healthy.mu.Unlock()
	if healthy.count() != n+1 {
		t.Fatalf("healthy subscriber got %d messages, want %d", healthy.count()-1, n)
	}
	// The stalled one's misses are counted: deliveries dropped (its queue
	// or its in-flight window was full) or a slow-client disconnect.
	if st.MessagesDropped == 0 && st.SlowDisconnects == 0 {
		t.Fatalf("nothing counted for the stalled subscriber: %+v", st)
	}
}

// A QoS 1 subscriber with a small Receive Maximum gets a burst larger than
// it, every message in order, as its acknowledgements free quota (mochi
// patch 4; upstream stopped sending after Receive Maximum held-back
// messages).
func TestBrokerReceiveMaximumFlowControl(t *testing.T) {
	b := startTestBroker(t, BrokerOptions{})
	conn, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	recvMax := uint16(5)
	s, _, err := connectClient(t, conn, &paho.Connect{CleanStart: true, Properties: &paho.ConnectProperties{ReceiveMaximum: &recvMax}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.subscribe("burst/#"); err != nil {
		t.Fatal(err)
	}
	const n = 1000 // within the in-flight bound (1,024): nothing may be dropped
	for i := range n {
		if err := b.Publish(fmt.Sprintf("burst/%d", i), []byte("v"), 1, false); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "every message of the burst", func() bool { return len(s.messages()) >= n })
	for i, m := range s.messages() {
		if m.topic != fmt.Sprintf("burst/%d", i) || m.qos != 1 {
			t.Fatalf("message %d: %s qos %d", i, m.topic, m.qos)
		}
	}
	if st := b.Stats(); st.MessagesDropped != 0 {
		t.Fatalf("drops: %+v", st)
	}
	// A later message goes straight through.
	if err := b.Publish("burst/late", []byte("v"), 1, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a message after the burst", func() bool { return len(s.messages()) == n+1 })
}
