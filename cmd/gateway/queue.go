package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/causeway/causeway/mqttcore"
	"github.com/causeway/causeway/queue"
)

// cmdQueue implements "gateway queue stats|peek": it reads the offline
// queue of a stopped gateway without changing it.
func cmdQueue(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "stats" && args[0] != "peek") {
		fmt.Fprint(stderr, "usage: gateway queue stats -c FILE\n       gateway queue peek -c FILE [-n 10]\n")
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("queue "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "gateway.toml", "configuration `file`")
	n := 10
	if sub == "peek" {
		fs.IntVar(&n, "n", 10, "how many messages to print")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gateway queue %s: unexpected argument %q\n", sub, fs.Arg(0))
		return 2
	}
	cfg, ok := load(*path, stderr)
	if !ok {
		return 1
	}
	dir := filepath.Join(cfg.Gateway.DataDir, "queue")
	if sub == "peek" {
		err := queue.Peek(dir, n, func(r mqttcore.Record) { printRecord(stdout, r) })
		return queueErr(err, stderr)
	}
	rep, err := queue.Inspect(dir)
	if code := queueErr(err, stderr); code != 0 {
		return code
	}
	printReport(stdout, rep)
	return 0
}

func queueErr(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, queue.ErrLocked):
		fmt.Fprintf(stderr, "gateway queue: %v\nStop the gateway first: these commands read the files of a stopped gateway.\n", err)
	default:
		fmt.Fprintf(stderr, "gateway queue: %v\n", err)
	}
	return 1
}

func printReport(w io.Writer, r *queue.Report) {
	fmt.Fprintf(w, "offline queue   %s\n", r.Dir)
	fmt.Fprintf(w, "messages        %d undelivered (%d bytes of topic and payload)\n", r.Messages, r.MessageBytes)
	fmt.Fprintf(w, "files           %d segments, %d bytes on disk\n", r.Segments, r.Bytes)
	fmt.Fprintf(w, "delivered up to seq %d (cursor %s); last seq %d\n", r.Committed, r.CursorState, r.LastSeq)
	if r.Messages > 0 {
		fmt.Fprintf(w, "oldest          %s (%s ago), seq %d\n", r.Oldest.UTC().Format(time.RFC3339), time.Since(r.Oldest).Round(time.Second), r.FirstSeq)
		fmt.Fprintf(w, "newest          %s\n", r.Newest.UTC().Format(time.RFC3339))
	}
	if r.Damaged > 0 {
		fmt.Fprintf(w, "damaged         %d damaged region(s) will be skipped\n", r.Damaged)
	}
	for _, f := range r.DamagedFiles {
		fmt.Fprintf(w, "damaged file    %s\n", f)
	}
	if len(r.Topics) > 0 {
		keys := make([]string, 0, len(r.Topics))
		for k := range r.Topics {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			return r.Topics[keys[i]] > r.Topics[keys[j]] || (r.Topics[keys[i]] == r.Topics[keys[j]] && keys[i] < keys[j])
		})
		fmt.Fprintln(w, "by device:")
		for i, k := range keys {
			if i == 20 {
				fmt.Fprintf(w, "  ... %d more\n", len(keys)-20)
				break
			}
			fmt.Fprintf(w, "  %8d  %s\n", r.Topics[k], k)
		}
	}
}

func printRecord(w io.Writer, r mqttcore.Record) {
	payload := r.Msg.Payload
	more := ""
	if len(payload) > 200 {
		payload, more = payload[:200], fmt.Sprintf("... (%d bytes)", len(r.Msg.Payload))
	}
	text := string(payload)
	if !utf8.Valid(payload) {
		text = fmt.Sprintf("%x", payload)
	} else {
		text = strconv.Quote(text)
	}
	fmt.Fprintf(w, "%d %s qos=%d retain=%t %s %s%s\n", r.Seq, r.Time.UTC().Format(time.RFC3339Nano), r.Msg.QoS, r.Msg.Retain, r.Msg.Topic, text, more)
}
