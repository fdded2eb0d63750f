package main

import (
	"bufio"
	"os"
	"strconv"
	"sync"
	"time"
)

// ackFlushEvery is how often the -acked file is flushed while running; it
// is also flushed when the run ends.
const ackFlushEvery = 100 * time.Millisecond

// ackLog appends the sequence number of every acknowledged request (2.xx
// response) to a file, one decimal number per line. Writes go through a
// buffer that is flushed every ackFlushEvery and on close, and always at a
// line boundary: a process killed between two flushes leaves whole lines
// only. Safe for concurrent use.
type ackLog struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	n    uint64
	err  error // first write error
	stop chan struct{}
	done chan struct{}
}

// openAckLog opens path for appending, creating it if need be, and starts
// the periodic flush.
func openAckLog(path string, every time.Duration) (*ackLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	a := &ackLog{f: f, w: bufio.NewWriterSize(f, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go a.flusher(every)
	return a, nil
}

func (a *ackLog) flusher(every time.Duration) {
	defer close(a.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.mu.Lock()
			a.flushLocked()
			a.mu.Unlock()
		}
	}
}

func (a *ackLog) flushLocked() {
	if a.w.Buffered() == 0 {
		return
	}
	if err := a.w.Flush(); err != nil && a.err == nil {
		a.err = err
	}
}

// add records seq as acknowledged.
func (a *ackLog) add(seq int64) {
	var tmp [24]byte
	line := append(strconv.AppendInt(tmp[:0], seq, 10), '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.w.Available() < len(line) {
		a.flushLocked() // keep every write(2) at a line boundary
	}
	if _, err := a.w.Write(line); err != nil && a.err == nil {
		a.err = err
	}
	a.n++
}

// count is the number of sequence numbers recorded.
func (a *ackLog) count() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

// close stops the periodic flush, flushes and closes the file, and returns
// the first error writing it.
func (a *ackLog) close() error {
	close(a.stop)
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flushLocked()
	if err := a.f.Close(); err != nil && a.err == nil {
		a.err = err
	}
	return a.err
}
