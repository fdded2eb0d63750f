package app

import (
	"testing"

	"github.com/causeway/causeway/bridge"
)

// TestCommandQueueBounded: at most commandQueue commands wait per adapter;
// the next is refused at once (the dispatcher answers "try again later"),
// and an adapter that is not running takes none.
func TestCommandQueueBounded(t *testing.T) {
	r := &adapterRun{name: "m", cmdCh: make(chan queuedCommand, commandQueue)}
	for i := range commandQueue {
		if running, full := r.offer(queuedCommand{cmd: bridge.Command{Adapter: "m"}}); !running || full {
			t.Fatalf("command %d: running %v full %v", i, running, full)
		}
	}
	if running, full := r.offer(queuedCommand{}); !running || !full {
		t.Fatalf("command %d: running %v full %v, want refused as full", commandQueue+1, running, full)
	}
	if len(r.cmdCh) != commandQueue {
		t.Fatalf("%d waiting, want %d", len(r.cmdCh), commandQueue)
	}
	stopped := &adapterRun{name: "s"}
	if running, _ := stopped.offer(queuedCommand{}); running {
		t.Fatal("a stopped adapter took a command")
	}
}
