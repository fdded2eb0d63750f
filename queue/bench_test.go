package queue

// Benchmarks of the disk queue; bench/queue.sh runs them (with the bbolt
// comparison in bbolt_bench_test.go) and prints one table. None of them
// runs without -bench.
//
//	BenchmarkAppend/{batch,always,off}/producers={1,32}
//	    accepted messages/s: every producer appends one message and waits
//	    for its durability callback before the next (as the CoAP adapter
//	    answers a confirmable request only then).
//	BenchmarkReplay/inflight={32,128}
//	    a backlog (BENCH_QUEUE_REPLAY, default 200,000) replayed at QoS 1 to
//	    a mosquitto started by the benchmark, until the queue is empty.
//	BenchmarkRestart
//	    1,000,000 queued messages (BENCH_QUEUE_RESTART): Open plus the first
//	    Next, with the files in the page cache (warm) and evicted (cold).
//
// Metrics, per accepted message:
//
//	app-B/msg    bytes the queue handed to write(2) (DiskStats.BytesWritten)
//	wchar-B/msg  bytes of every write system call of the process (/proc/self/io wchar)
//	wb-B/msg     bytes the process caused to be sent to storage (/proc/self/io
//	             write_bytes: counted per page dirtied, so a 4 KiB page
//	             rewritten after every fsync counts 4 KiB each time)
//	dev-B/msg    sectors written to the block device holding the queue, the
//	             file system's journal included, after the data was flushed
//	             (machine-wide: anything else writing meanwhile adds to it)
//	fsync/msg    fdatasync/fsync calls (the writer's, the batch syncer's, and
//	             those of starting a segment)
//	msg/write    messages per write(2): the size of a group commit
//	record-B     the size of one record in a segment file (header included)

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/internal/testpeer"
	"github.com/causeway/causeway/mqttcore"
)

const (
	benchPayloadSize = 256
	benchMaxBytes    = 64 << 30 // never the limit in a benchmark
)

// benchPayload is a 256-byte JSON reading.
func benchPayload() []byte {
	p := []byte(`{"time":"2026-11-25T10:00:00.123Z","device":"dev-000001","temperature":21.5,"humidity":40.2,"pressure":1013.2,"battery":3.61,"rssi":-71,"note":"`)
	for len(p) < benchPayloadSize-2 {
		p = append(p, 'x')
	}
	return append(p, '"', '}')
}

// benchMessage is the message of producer (device) dev: a 31-byte topic.
func benchMessage(dev int, payload []byte) bridge.Message {
	return bridge.Message{Topic: fmt.Sprintf("gw-01/coap/dev-%06d/telemetry", dev), Payload: payload, QoS: 1, Uplink: true}
}

// benchRecordSize is what one benchmark message takes in a segment file.
func benchRecordSize() int64 {
	m := benchMessage(0, benchPayload())
	return recordSize(&m)
}

// envInt reads a positive integer setting of the benchmarks.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// ioCounters are the process's I/O counters (/proc/self/io).
type ioCounters struct{ wchar, writeBytes int64 }

func readIO() ioCounters {
	var c ioCounters
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return c
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "wchar":
			c.wchar = n
		case "write_bytes":
			c.writeBytes = n
		}
	}
	return c
}

// devStatPath is the /sys stat file of the block device holding dir ("" if
// there is none, e.g. on overlayfs or tmpfs).
func devStatPath(dir string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return ""
	}
	dev := uint64(st.Dev)
	major := (dev>>8)&0xfff | (dev>>32)&^0xfff
	minor := dev&0xff | (dev>>12)&^0xff
	p := fmt.Sprintf("/sys/dev/block/%d:%d/stat", major, minor)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// devWritten is the number of bytes written to the device whose stat file
// is path (field 7: sectors written, 512 bytes each); -1 if unknown.
func devWritten(path string) int64 {
	if path == "" {
		return -1
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 7 {
		return -1
	}
	n, err := strconv.ParseInt(f[6], 10, 64)
	if err != nil {
		return -1
	}
	return n * 512
}

// syncDirFiles fdatasyncs every regular file under dir (so that what the
// benchmark wrote reaches the device before devWritten is read) and
// returns the sum of their sizes and of their allocated blocks.
func syncDirFiles(b testing.TB, dir string, evict bool) (size, alloc int64) {
	b.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return err
		}
		if evict {
			// POSIX_FADV_DONTNEED: drop the file's clean pages from the
			// page cache, so that the next read comes from the device.
			if _, _, e := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, 4, 0, 0); e != 0 {
				return e
			}
		}
		var st syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
			return err
		}
		size += st.Size
		alloc += st.Blocks * 512
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return size, alloc
}

// appender is what the append benchmark drives: *Queue and *boltQueue.
type appender interface {
	Append(m bridge.Message, done func(error)) (uint64, error)
}

// ioSnap is the state of the counters at the start of a measurement.
type ioSnap struct {
	io      ioCounters
	devPath string
	dev     int64
}

func snapIO(dir string) ioSnap {
	p := devStatPath(dir)
	return ioSnap{io: readIO(), devPath: p, dev: devWritten(p)}
}

// report adds the I/O metrics since s, per message. Call it after the
// data was flushed (syncDirFiles).
func (s ioSnap) report(b *testing.B, n int) {
	io := readIO()
	per := func(v int64) float64 { return float64(v) / float64(n) }
	b.ReportMetric(per(io.wchar-s.io.wchar), "wchar-B/msg")
	b.ReportMetric(per(io.writeBytes-s.io.writeBytes), "wb-B/msg")
	if d := devWritten(s.devPath); d >= 0 && s.dev >= 0 {
		b.ReportMetric(per(d-s.dev), "dev-B/msg")
	}
}

// runProducers appends b.N messages from producers goroutines, each waiting
// for the durability callback of its message before appending the next, and
// reports msgs/s. The timer runs only while they do.
func runProducers(b *testing.B, a appender, producers int) {
	b.Helper()
	payload := benchPayload()
	var next atomic.Int64
	n := int64(b.N)
	errc := make(chan error, producers)
	var wg sync.WaitGroup
	b.ResetTimer()
	for p := range producers {
		wg.Go(func() {
			m := benchMessage(p+1, payload)
			done := make(chan error, 1)
			cb := func(err error) { done <- err }
			for next.Add(1) <= n {
				if _, err := a.Append(m, cb); err != nil {
					errc <- err
					return
				}
				if err := <-done; err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errc)
	for err := range errc {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

var benchPolicies = []Fsync{FsyncBatch, FsyncAlways, FsyncOff}

// BenchmarkAppend measures accepted messages/s of the segment log under
// each fsync policy, with 1 and 32 concurrent producers.
func BenchmarkAppend(b *testing.B) {
	for _, fs := range benchPolicies {
		b.Run(fs.String(), func(b *testing.B) {
			for _, producers := range []int{1, 32} {
				b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) {
					benchAppend(b, fs, producers)
				})
			}
		})
	}
}

func benchAppend(b *testing.B, fs Fsync, producers int) {
	dir := b.TempDir()
	q, err := Open(dir, Options{MaxBytes: benchMaxBytes, WhenFull: mqttcore.DropNewest, Fsync: fs, Log: quietLog()})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	snap := snapIO(dir)
	runProducers(b, q, producers)
	st := q.DiskStats()
	if err := q.Close(); err != nil {
		b.Fatal(err)
	}
	syncDirFiles(b, dir, false)
	n := float64(b.N)
	fsyncs := float64(st.Fsyncs)
	b.ReportMetric(float64(st.BytesWritten)/n, "app-B/msg")
	snap.report(b, b.N)
	b.ReportMetric(fsyncs/n, "fsync/msg")
	b.ReportMetric(n/float64(max(st.Writes, 1)), "msg/write")
	b.ReportMetric(float64(benchRecordSize()), "record-B")
	b.ReportMetric(0, "ns/op") // msgs/s says it
}

// fill appends n benchmark messages to q without waiting for each, and
// returns once all of them are written.
func fill(b testing.TB, q *Queue, n int) {
	b.Helper()
	payload := benchPayload()
	m := benchMessage(1, payload)
	done := make(chan error, 1)
	for i := 1; i <= n; i++ {
		var cb func(error)
		if i%10000 == 0 || i == n {
			cb = func(err error) { done <- err }
		}
		if _, err := q.Append(m, cb); err != nil {
			b.Fatal(err)
		}
		if cb != nil {
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkReplay measures the replay of a backlog to mosquitto at QoS 1
// through mqttcore's uplink, with 32 and 128 publishes in flight. No
// subscriber is attached: the rate is that of PUBLISH/PUBACK with the
// broker.
func BenchmarkReplay(b *testing.B) {
	backlog := envInt("BENCH_QUEUE_REPLAY", 200000)
	mq := testpeer.StartMosquitto(b, 0)
	for _, inflight := range []int{32, 128} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			var elapsed time.Duration
			maxInflight := 0
			for i := range b.N {
				d, mi := replayOnce(b, mq.URL(), filepath.Join(b.TempDir(), strconv.Itoa(i)), backlog, inflight)
				elapsed += d
				maxInflight = max(maxInflight, mi)
			}
			b.ReportMetric(float64(backlog*b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(backlog), "backlog")
			b.ReportMetric(float64(maxInflight), "max-inflight")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// replayOnce fills a queue in dir with backlog messages, then times an
// uplink emptying it. It returns the time and the most publishes seen in
// flight.
func replayOnce(b *testing.B, url, dir string, backlog, inflight int) (time.Duration, int) {
	b.StopTimer()
	q, err := Open(dir, Options{MaxBytes: benchMaxBytes, WhenFull: mqttcore.DropNewest, Log: quietLog()})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	fill(b, q, backlog)
	u, err := mqttcore.NewUplink(mqttcore.UplinkOptions{
		URL:        url,
		ClientID:   fmt.Sprintf("queue-bench-%d", time.Now().UnixNano()),
		Queue:      q,
		Inflight:   inflight,
		BackoffMin: 50 * time.Millisecond,
		BackoffMax: 500 * time.Millisecond,
		Log:        quietLog(),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	b.StartTimer()
	start := time.Now()
	go func() { runErr <- u.Run(ctx) }()
	deadline := start.Add(5 * time.Minute)
	maxInflight := 0
	for q.Stats().Len > 0 {
		if time.Now().After(deadline) {
			cancel()
			<-runErr
			b.Fatalf("replay: %d of %d messages left after 5 minutes", q.Stats().Len, backlog)
		}
		maxInflight = max(maxInflight, u.Stats().Inflight)
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			b.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		b.Fatal("uplink Run did not return")
	}
	st := u.Stats()
	if st.Acked < uint64(backlog) || st.Dropped.Total() != 0 {
		b.Fatalf("replay: acked %d of %d, dropped %+v", st.Acked, backlog, st.Dropped)
	}
	return elapsed, maxInflight
}

// BenchmarkRestart measures the restart of a queue holding 1,000,000
// messages (BENCH_QUEUE_RESTART): Open and the first Next, with the segment
// files in the page cache (warm) and evicted from it (cold). It also
// reports the space the backlog takes.
func BenchmarkRestart(b *testing.B) {
	n := envInt("BENCH_QUEUE_RESTART", 1000000)
	dir := b.TempDir()
	opts := Options{MaxBytes: benchMaxBytes, WhenFull: mqttcore.DropNewest, Fsync: FsyncOff, Log: quietLog()}
	q, err := Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	fill(b, q, n)
	fillTime := time.Since(start)
	if err := q.Close(); err != nil {
		b.Fatal(err)
	}
	size, alloc := syncDirFiles(b, dir, false)
	for _, mode := range []string{"warm", "cold"} {
		b.Run(mode, func(b *testing.B) {
			var open, first time.Duration
			for range b.N {
				b.StopTimer()
				syncDirFiles(b, dir, mode == "cold")
				b.StartTimer()
				t0 := time.Now()
				q, err := Open(dir, opts)
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				rec, ok, err := q.Next()
				t2 := time.Now()
				b.StopTimer()
				if err != nil || !ok || rec.Seq != 1 {
					b.Fatalf("first Next after restart: %v %v %v", rec.Seq, ok, err)
				}
				if st := q.Stats(); st.Len != n {
					b.Fatalf("%d messages after restart, want %d", st.Len, n)
				}
				if err := q.Close(); err != nil {
					b.Fatal(err)
				}
				open += t1.Sub(t0)
				first += t2.Sub(t1)
			}
			b.ReportMetric((open+first).Seconds()/float64(b.N), "s/restart")
			b.ReportMetric(open.Seconds()/float64(b.N), "open-s")
			b.ReportMetric(first.Seconds()/float64(b.N), "first-next-s")
			b.ReportMetric(float64(n), "queued")
			b.ReportMetric(float64(size)/(1<<20), "disk-MiB")
			b.ReportMetric(float64(alloc)/float64(n), "disk-B/msg")
			b.ReportMetric(float64(n)/fillTime.Seconds(), "fill-msgs/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
