package logging

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
)

// BenchmarkInfo: an info line through a derived logger, text, to a discarding
// writer; compare BenchmarkInfoSlog for slog's handler alone.
func BenchmarkInfo(b *testing.B) {
	root, _ := New(io.Discard, Options{})
	log := root.With("adapter", "modbus")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		log.LogAttrs(ctx, slog.LevelInfo, "reading", slog.String("device", "d1"), slog.Int("points", 12))
	}
}

func BenchmarkInfoJournald(b *testing.B) {
	root, _ := New(io.Discard, Options{Journald: true})
	log := root.With("adapter", "modbus")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		log.LogAttrs(ctx, slog.LevelInfo, "reading", slog.String("device", "d1"), slog.Int("points", 12))
	}
}

func BenchmarkInfoSlog(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil)).With("adapter", "modbus")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		log.LogAttrs(ctx, slog.LevelInfo, "reading", slog.String("device", "d1"), slog.Int("points", 12))
	}
}

// BenchmarkWarnRepeated: the same warning over and over, all but the first
// held back by the rate limiter.
func BenchmarkWarnRepeated(b *testing.B) {
	root, _ := New(io.Discard, Options{})
	log := root.With("adapter", "modbus")
	err := errors.New("modbus: i/o timeout")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		log.LogAttrs(ctx, slog.LevelWarn, "read failed", slog.String("device", "d1"), slog.Int("unit", 3), slog.Any("err", err))
	}
}

// BenchmarkWarnDistinct: warnings from ever new peers, each written, the
// key table full and evicting.
func BenchmarkWarnDistinct(b *testing.B) {
	root, _ := New(io.Discard, Options{})
	log := root.With("adapter", "coap")
	peers := make([]slog.Attr, 4096)
	for i := range peers {
		peers[i] = slog.Int("peer", i)
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		log.LogAttrs(ctx, slog.LevelWarn, "bad request", peers[i%len(peers)])
		i++
	}
}
