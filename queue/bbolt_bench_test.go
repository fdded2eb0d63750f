package queue

// A minimal bbolt-backed FIFO queue, only to compare it with the segment
// log on the same benchmark (bench/queue.sh prints both):
//
//	BenchmarkBoltAppend/{always,always-1tx,batch,off}/producers={1,32}
//
//	always      appends are batched into one read-write transaction per
//	            group commit (while one commits, new appends wait for the
//	            next one); NoSync false: bbolt fdatasyncs twice per commit
//	            (the pages, then the meta page) and once more (fsync) when
//	            it grows the file.
//	always-1tx  one transaction per message (db.Update per Append).
//	batch       group commit with NoSync, and db.Sync every 50 ms.
//	off         group commit with NoSync.
//
// Records are keyed by their sequence number (big-endian uint64, so the
// keys sort in FIFO order), the value is time, flags, topic and payload.
// Metrics as in bench_test.go; app-B/msg is missing here because bbolt
// writes its pages with pwrite: wchar-B/msg is its logical write volume.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/causeway/causeway/bridge"
	"github.com/causeway/causeway/mqttcore"
	bolt "go.etcd.io/bbolt"
)

var boltBucket = []byte("queue")

type boltRec struct {
	seq  uint64
	val  []byte
	done func(error)
}

type boltOptions struct {
	noSync    bool
	oneTx     bool
	syncEvery time.Duration // with noSync: db.Sync this often (0: never)
}

type boltQueue struct {
	db   *bolt.DB
	opts boltOptions

	mu      sync.Mutex
	closed  bool
	nextSeq uint64
	pend    []boltRec
	readSeq uint64

	wake chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup

	commits atomic.Uint64
	syncs   atomic.Uint64 // db.Sync calls (batch)
	sizeMu  sync.Mutex
	size    int64  // file size after the last commit
	grows   uint64 // commits that grew the file (one fsync each)
}

func openBolt(path string, o boltOptions) (*boltQueue, error) {
	db, err := bolt.Open(path, 0o640, &bolt.Options{Timeout: time.Second, NoSync: o.noSync})
	if err != nil {
		return nil, err
	}
	q := &boltQueue{db: db, opts: o, nextSeq: 1, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(boltBucket)
		if err != nil {
			return err
		}
		if k, _ := b.Cursor().Last(); k != nil {
			q.nextSeq = binary.BigEndian.Uint64(k) + 1
		}
		if k, _ := b.Cursor().First(); k != nil {
			q.readSeq = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	if q.readSeq == 0 {
		q.readSeq = q.nextSeq
	}
	q.noteSize()
	if !o.oneTx {
		q.wg.Add(1)
		go q.writer()
	}
	if o.noSync && o.syncEvery > 0 {
		q.wg.Add(1)
		go q.syncer()
	}
	return q, nil
}

func boltKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func boltValue(m *bridge.Message, t time.Time) []byte {
	v := make([]byte, 0, 11+len(m.Topic)+len(m.Payload))
	v = binary.BigEndian.AppendUint64(v, uint64(t.UnixNano()))
	v = append(v, m.QoS&3)
	v = binary.BigEndian.AppendUint16(v, uint16(len(m.Topic)))
	v = append(v, m.Topic...)
	return append(v, m.Payload...)
}

func boltDecode(seq uint64, v []byte) (mqttcore.Record, error) {
	if len(v) < 11 {
		return mqttcore.Record{}, errors.New("bolt queue: short value")
	}
	tlen := int(binary.BigEndian.Uint16(v[9:]))
	if 11+tlen > len(v) {
		return mqttcore.Record{}, errors.New("bolt queue: bad topic length")
	}
	return mqttcore.Record{
		Seq:  seq,
		Time: time.Unix(0, int64(binary.BigEndian.Uint64(v))),
		Msg: bridge.Message{
			Topic:   string(v[11 : 11+tlen]),
			Payload: append([]byte(nil), v[11+tlen:]...),
			QoS:     v[8] & 3,
		},
	}, nil
}

// Append stores m; done is called once the transaction holding it has
// committed (with NoSync false: once it is on the disk).
func (q *boltQueue) Append(m bridge.Message, done func(error)) (uint64, error) {
	val := boltValue(&m, time.Now())
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0, mqttcore.ErrClosed
	}
	seq := q.nextSeq
	q.nextSeq++
	if q.opts.oneTx {
		q.mu.Unlock()
		err := q.commit([]boltRec{{seq: seq, val: val}})
		if done != nil {
			done(err)
		}
		return seq, nil
	}
	q.pend = append(q.pend, boltRec{seq: seq, val: val, done: done})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return seq, nil
}

// commit puts recs in one read-write transaction.
func (q *boltQueue) commit(recs []boltRec) error {
	err := q.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(boltBucket)
		b.FillPercent = 1 // keys only ever grow: fill the pages
		for _, r := range recs {
			if err := b.Put(boltKey(r.seq), r.val); err != nil {
				return err
			}
		}
		return nil
	})
	q.commits.Add(1)
	q.noteSize()
	return err
}

// noteSize counts the commits that grew the file: bbolt fsyncs it then.
func (q *boltQueue) noteSize() {
	fi, err := os.Stat(q.db.Path())
	if err != nil {
		return
	}
	q.sizeMu.Lock()
	if q.size > 0 && fi.Size() > q.size {
		q.grows++
	}
	q.size = max(q.size, fi.Size())
	q.sizeMu.Unlock()
}

// writer commits everything appended meanwhile in one transaction.
func (q *boltQueue) writer() {
	defer q.wg.Done()
	var spare []boltRec
	for {
		select {
		case <-q.wake:
		case <-q.stop:
			q.flushPending(&spare)
			return
		}
		q.flushPending(&spare)
	}
}

func (q *boltQueue) flushPending(spare *[]boltRec) {
	for {
		q.mu.Lock()
		batch := q.pend
		q.pend = (*spare)[:0]
		q.mu.Unlock()
		if len(batch) == 0 {
			*spare = batch
			return
		}
		err := q.commit(batch)
		for i := range batch {
			if batch[i].done != nil {
				batch[i].done(err)
			}
			batch[i] = boltRec{}
		}
		*spare = batch[:0]
	}
}

func (q *boltQueue) syncer() {
	defer q.wg.Done()
	t := time.NewTicker(q.opts.syncEvery)
	defer t.Stop()
	last := q.commits.Load()
	for {
		select {
		case <-q.stop:
			return
		case <-t.C:
			if c := q.commits.Load(); c != last {
				last = c
				_ = q.db.Sync()
				q.syncs.Add(1)
			}
		}
	}
}

// Next returns the oldest record not yet handed out.
func (q *boltQueue) Next() (mqttcore.Record, bool, error) {
	q.mu.Lock()
	from := q.readSeq
	q.mu.Unlock()
	var rec mqttcore.Record
	found := false
	err := q.db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(boltBucket).Cursor().Seek(boltKey(from))
		if k == nil {
			return nil
		}
		var err error
		rec, err = boltDecode(binary.BigEndian.Uint64(k), v)
		found = err == nil
		return err
	})
	if err != nil || !found {
		return mqttcore.Record{}, false, err
	}
	q.mu.Lock()
	q.readSeq = max(q.readSeq, rec.Seq+1)
	q.mu.Unlock()
	return rec, true, nil
}

// Ack deletes the record seq.
func (q *boltQueue) Ack(seq uint64) error {
	return q.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(boltBucket).Delete(boltKey(seq)) })
}

// Len counts the records stored.
func (q *boltQueue) Len() int {
	n := 0
	_ = q.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(boltBucket).Stats().KeyN
		return nil
	})
	return n
}

// fsyncs is the number of fdatasync/fsync calls so far.
func (q *boltQueue) fsyncs() uint64 {
	if q.opts.noSync {
		return q.syncs.Load()
	}
	q.sizeMu.Lock()
	defer q.sizeMu.Unlock()
	return 2*q.commits.Load() + q.grows
}

func (q *boltQueue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	close(q.stop)
	q.wg.Wait()
	return q.db.Close()
}

// TestBoltQueueFIFO checks the comparison queue itself: FIFO order,
// contents, and records surviving a reopen until acknowledged.
func TestBoltQueueFIFO(t *testing.T) {
	for _, o := range []boltOptions{{noSync: true}, {noSync: true, oneTx: true}} {
		t.Run(fmt.Sprintf("oneTx=%v", o.oneTx), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "q.db")
			q, err := openBolt(path, o)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for p := range 4 {
				wg.Go(func() {
					for i := range 25 {
						done := make(chan error, 1)
						if _, err := q.Append(msg(fmt.Sprintf("t/%d", p), fmt.Sprint(i)), func(err error) { done <- err }); err != nil {
							t.Error(err)
							return
						}
						if err := <-done; err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if n := q.Len(); n != 100 {
				t.Fatalf("Len = %d, want 100", n)
			}
			last := map[string]int{}
			for i := range 40 {
				rec, ok, err := q.Next()
				if err != nil || !ok || rec.Seq != uint64(i+1) || rec.Msg.QoS != 1 {
					t.Fatalf("Next %d: %+v %v %v", i, rec, ok, err)
				}
				var v int
				fmt.Sscan(string(rec.Msg.Payload), &v)
				if prev, seen := last[rec.Msg.Topic]; seen && v != prev+1 {
					t.Fatalf("%s: %d after %d", rec.Msg.Topic, v, prev)
				}
				last[rec.Msg.Topic] = v
				if err := q.Ack(rec.Seq); err != nil {
					t.Fatal(err)
				}
			}
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			q, err = openBolt(path, o)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			rec, ok, err := q.Next()
			if err != nil || !ok || rec.Seq != 41 {
				t.Fatalf("after reopen: %+v %v %v", rec, ok, err)
			}
			if n := q.Len(); n != 60 {
				t.Fatalf("Len after reopen = %d, want 60", n)
			}
		})
	}
}

var boltPolicies = []struct {
	name string
	opts boltOptions
}{
	{"always", boltOptions{}},
	{"always-1tx", boltOptions{oneTx: true}},
	{"batch", boltOptions{noSync: true, syncEvery: DefaultFsyncInterval}},
	{"off", boltOptions{noSync: true}},
}

// BenchmarkBoltAppend is BenchmarkAppend against the bbolt queue.
func BenchmarkBoltAppend(b *testing.B) {
	for _, p := range boltPolicies {
		b.Run(p.name, func(b *testing.B) {
			for _, producers := range []int{1, 32} {
				b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) {
					dir := b.TempDir()
					q, err := openBolt(filepath.Join(dir, "q.db"), p.opts)
					if err != nil {
						b.Fatal(err)
					}
					defer q.Close()
					snap := snapIO(dir)
					commits0, fsyncs0 := q.commits.Load(), q.fsyncs()
					runProducers(b, q, producers)
					commits, fsyncs := q.commits.Load()-commits0, q.fsyncs()-fsyncs0
					if err := q.Close(); err != nil {
						b.Fatal(err)
					}
					syncDirFiles(b, dir, false)
					n := float64(b.N)
					snap.report(b, b.N)
					b.ReportMetric(float64(fsyncs)/n, "fsync/msg")
					b.ReportMetric(n/float64(max(commits, 1)), "msg/write")
					b.ReportMetric(0, "ns/op")
				})
			}
		})
	}
}
