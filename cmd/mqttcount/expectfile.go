package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
)

// maxMissingExamples bounds the missing acknowledged seqs listed.
const maxMissingExamples = 20

// readExpectFile reads sequence numbers, one decimal number per line, as
// coapload -acked writes them. Duplicates are allowed; blank lines and
// surrounding spaces are ignored; anything else is an error. It returns the
// set and the number of distinct seqs in it.
func readExpectFile(path string) (*seqSet, uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	return parseExpect(f, path)
}

func parseExpect(r io.Reader, name string) (*seqSet, uint64, error) {
	set := &seqSet{}
	var n uint64
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		seq, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil || seq < 0 || seq > maxSeq {
			return nil, 0, fmt.Errorf("%s:%d: %q is not a sequence number (0..%d)", name, line, b, int64(maxSeq))
		}
		if set.add(seq) {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", name, err)
	}
	return set, n, nil
}
