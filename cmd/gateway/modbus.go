package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/causeway/causeway/adapters/modbus"
	"github.com/causeway/causeway/config"
)

const modbusUsage = `usage: gateway modbus plan -c FILE
       gateway modbus read -url URL [-unit 1] [-table holding] [-address 0] [-count 1]
                           [-type uint16] [-order ABCD] [-length 0] [-scale 1] [-offset 0]
                           [-baud 9600] [-parity N] [-data-bits 8] [-stop-bits 1]
                           [-timeout 1s] [-retries 0]
  plan  prints, for every Modbus device of FILE, the requests of one poll cycle
  read  reads -count values of -type from a device and prints them decoded, with
        the raw registers: the commissioning tool (URL: tcp://host:502,
        rtu:///dev/ttyUSB0, rtuovertcp://host:4001)
`

// cmdModbus implements "gateway modbus plan|read".
func cmdModbus(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, modbusUsage)
		return 2
	}
	switch args[0] {
	case "plan":
		return cmdModbusPlan(args[1:], stdout, stderr)
	case "read":
		return cmdModbusRead(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, modbusUsage)
		return 0
	}
	fmt.Fprintf(stderr, "gateway modbus: unknown subcommand %q\n\n%s", args[0], modbusUsage)
	return 2
}

func cmdModbusPlan(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("modbus plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "gateway.toml", "configuration `file`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, ok := load(*path, stderr)
	if !ok {
		return 1
	}
	if len(cfg.Modbus) == 0 {
		fmt.Fprintf(stdout, "%s has no [[modbus]] block.\n", *path)
		return 0
	}
	for i, m := range cfg.Modbus {
		a, err := modbus.New(m, modbus.Deps{})
		if err != nil {
			fmt.Fprintf(stderr, "modbus %s: %v\n", m.Name, err)
			return 1
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		baud := 0
		if strings.HasPrefix(m.URL, "rtu") {
			baud = m.Baud
		}
		fmt.Fprintf(stdout, "[[modbus]] %s  %s\n", m.Name, m.URL)
		for _, p := range a.Plans() {
			fmt.Fprintln(stdout)
			modbus.FormatPlan(stdout, p.Device, p.Unit, p.Points, p.Reads, baud)
		}
	}
	return 0
}

func cmdModbusRead(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("modbus read", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		mc   = config.Modbus{Name: "read"}
		pt   config.ModbusPoint
		unit int
		cnt  int
	)
	fs.StringVar(&mc.URL, "url", "", "device `URL`: tcp://host:502, rtu:///dev/ttyUSB0 or rtuovertcp://host:4001")
	fs.IntVar(&unit, "unit", 1, "unit id")
	fs.StringVar(&pt.Table, "table", "holding", "coil | discrete | input | holding")
	fs.IntVar(&pt.Address, "address", 0, "zero-based address of the first value")
	fs.IntVar(&cnt, "count", 1, "how many values of -type to read, one after the other")
	fs.StringVar(&pt.Type, "type", "", "bool int16 uint16 int32 uint32 int64 uint64 float32 float64 string (default uint16, bool for coil/discrete)")
	fs.StringVar(&pt.Order, "order", "ABCD", "byte order of multi-register types")
	fs.IntVar(&pt.Length, "length", 0, "registers, for -type string")
	fs.Float64Var(&pt.Scale, "scale", 1, "value = raw * scale + offset")
	fs.Float64Var(&pt.Offset, "offset", 0, "value = raw * scale + offset")
	fs.IntVar(&mc.Baud, "baud", 9600, "rtu: baud rate")
	parity := fs.String("parity", "N", "rtu: N | E | O")
	fs.IntVar(&mc.DataBits, "data-bits", 8, "rtu: data bits")
	fs.IntVar(&mc.StopBits, "stop-bits", 1, "rtu: stop bits")
	timeout := fs.Duration("timeout", time.Second, "per request")
	fs.IntVar(&mc.Retries, "retries", 0, "retries after a timeout")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if mc.URL == "" {
		fmt.Fprintf(stderr, "gateway modbus read: -url is required\n\n%s", modbusUsage)
		return 2
	}
	mc.Parity = strings.ToUpper(*parity)
	mc.Timeout = config.Duration(*timeout)
	if pt.Type == "" {
		pt.Type = "uint16"
		if pt.Table == "coil" || pt.Table == "discrete" {
			pt.Type = "bool"
		}
	}
	if cnt < 1 {
		fmt.Fprintln(stderr, "gateway modbus read: -count must be at least 1")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := modbus.ReadOnce(ctx, mc, unit, pt, cnt, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintf(stderr, "gateway modbus read: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s unit %d, %s %d..%d (%d %s) in %s\n", mc.URL, unit, pt.Table, res.First, res.Last,
		res.Last-res.First+1, res.Unit, res.Elapsed.Round(10*time.Microsecond))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "address\traw\t%s %s\n", pt.Type, res.Order)
	for _, v := range res.Values {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", v.Address, v.Raw, v.Text)
	}
	_ = tw.Flush()
	return 0
}
