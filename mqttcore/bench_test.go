package mqttcore

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/causeway/causeway/bridge"
)

func reportRate(b *testing.B, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkBrokerPublishInline(b *testing.B) {
	payload := []byte(`{"time":"2026-11-25T10:00:00.123Z","temperature":21.5,"humidity":40}`)
	setup := func(b *testing.B) *MochiBroker {
		br, err := StartBroker(BrokerOptions{Listen: "127.0.0.1:0", AllowAnonymous: true, Log: discardLogger()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = br.Close() })
		return br
	}
	b.Run("no-subscriber", func(b *testing.B) {
		br := setup(b)
		b.ReportAllocs()
		for b.Loop() {
			if err := br.Publish("gw-01/modbus/boiler", payload, 1, false); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, b.N)
	})
	b.Run("inline-subscriber", func(b *testing.B) {
		br := setup(b)
		var got atomic.Int64
		unsub, _ := br.Subscribe("gw-01/#", func(string, []byte) { got.Add(1) })
		defer unsub()
		b.ReportAllocs()
		for b.Loop() {
			_ = br.Publish("gw-01/modbus/boiler", payload, 1, false)
		}
		reportRate(b, b.N)
	})
	b.Run("tcp-subscriber-qos1", func(b *testing.B) {
		br := setup(b)
		s := newSubscriber(b, br.Addr().String(), 1, "gw-01/#")
		b.ReportAllocs()
		for b.Loop() {
			_ = br.Publish("gw-01/modbus/boiler", payload, 1, false)
		}
		reportRate(b, b.N)
		b.StopTimer()
		deadline := time.Now().Add(10 * time.Second)
		for int64(s.count())+br.Stats().MessagesDropped < int64(b.N) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		b.ReportMetric(float64(br.Stats().MessagesDropped), "dropped")
	})
	b.Run("parallel-no-subscriber", func(b *testing.B) {
		br := setup(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = br.Publish("gw-01/modbus/boiler", payload, 1, false)
			}
		})
		reportRate(b, b.N)
	})
}

func benchmarkUplink(b *testing.B, qos byte) {
	mq := startMosquitto(b, "")
	opts := testUplinkOptions(b, mq.url())
	opts.Log = discardLogger()
	opts.Queue = NewMemoryQueue(MemoryQueueOptions{MaxBytes: 1 << 30, WhenFull: DropNewest, Log: opts.Log})
	u := newTestUplink(b, opts)
	runUplink(b, u)
	deadline := time.Now().Add(5 * time.Second)
	for !u.Connected() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	payload := bytes.Repeat([]byte("x"), 100)
	base := u.Stats().Acked
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := u.Enqueue(bridge.Message{Topic: "gw-01/bench", Payload: payload, QoS: qos}, nil); err != nil {
			b.Fatal(err)
		}
	}
	for u.Stats().Acked-base < uint64(b.N) {
		if time.Since(deadline) > time.Minute {
			b.Fatalf("acked %d of %d", u.Stats().Acked-base, b.N)
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	reportRate(b, b.N)
	if d := u.Stats().Dropped.Total(); d != 0 {
		b.Fatalf("%d dropped", d)
	}
}

func BenchmarkUplinkQoS1(b *testing.B) { benchmarkUplink(b, 1) }
func BenchmarkUplinkQoS0(b *testing.B) { benchmarkUplink(b, 0) }
func BenchmarkUplinkQoS2(b *testing.B) { benchmarkUplink(b, 2) }

func BenchmarkMemoryQueue(b *testing.B) {
	q := NewMemoryQueue(MemoryQueueOptions{Log: discardLogger()})
	m := bridge.Message{Topic: "gw-01/modbus/boiler", Payload: make([]byte, 100), QoS: 1}
	b.Run("append-next-ack", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			seq, err := q.Append(m, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, ok, _ := q.Next(); !ok {
				b.Fatal("empty")
			}
			_ = q.Ack(seq)
		}
		reportRate(b, b.N)
	})
	b.Run("backlog-10k", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for range 10000 {
				_, _ = q.Append(m, nil)
			}
			_ = q.Rewind()
			for {
				rec, ok, _ := q.Next()
				if !ok {
					break
				}
				_ = q.Ack(rec.Seq)
			}
		}
		reportRate(b, b.N*10000)
	})
	if st := q.Stats(); st.Len != 0 {
		b.Fatal(fmt.Sprint("left ", st.Len))
	}
}
