// Command gateway is causeway, an edge gateway that bridges CoAP, serial and
// Modbus devices into MQTT.
//
//	gateway run     [-c gateway.toml]   start the gateway
//	gateway check   [-c gateway.toml]   report every config error, or print the effective config
//	gateway version                     print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/causeway/causeway/app"
	"github.com/causeway/causeway/config"
	"github.com/causeway/causeway/internal/logging"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: gateway <command> [flags]

commands:
  run     -c FILE   start the gateway (default FILE: gateway.toml)
  check   -c FILE   report every configuration error (exit 1), or print the
                    effective configuration with secrets redacted (exit 0)
  reload  -c FILE   check FILE, then make the running gateway apply it (over
                    [http] when configured, else SIGHUP to the pid in data_dir)
  queue stats -c FILE          summarize the offline queue in data_dir
  queue peek  -c FILE [-n 10]  print the next undelivered messages
                    (both read the files of a stopped gateway)
  ports   [-json]   list the serial ports with their USB id, serial number and
                    the usb/usb_serial lines that select them in the config
  modbus plan -c FILE          print the requests of one poll cycle per device
  modbus read -url URL [-unit 1 -table holding -address 0 -count 1
              -type uint16 -order ABCD ...]   read and decode values from a
                    device: the commissioning tool (gateway modbus -h)
  hash-password     read a password on standard input, print its bcrypt hash
                    for password_hash in a [[broker.user]]
  version           print the version
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(rest, stderr)
	case "check":
		return cmdCheck(rest, stdout, stderr)
	case "queue":
		return cmdQueue(rest, stdout, stderr)
	case "modbus":
		return cmdModbus(rest, stdout, stderr)
	case "reload":
		return cmdReload(rest, stdout, stderr)
	case "ports":
		return cmdPorts(rest, stdout, stderr)
	case "hash-password":
		return cmdHashPassword(rest, os.Stdin, stdout, stderr)
	case "version", "-v", "--version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "gateway: unknown command %q\n\n%s", cmd, usage)
	return 2
}

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return fmt.Sprintf("causeway gateway %s %s %s/%s", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// flags are the command-line flags of run and check.
type flags struct {
	config     string
	cpuProfile string // run only: write a CPU profile here until exit
}

func parseFlags(name string, args []string, stderr io.Writer) (flags, bool) {
	var f flags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "c", "gateway.toml", "configuration `file`")
	if name == "run" {
		fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile to `file` until the gateway stops (for performance work)")
	}
	if err := fs.Parse(args); err != nil {
		return f, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gateway %s: unexpected argument %q\n", name, fs.Arg(0))
		return f, false
	}
	return f, true
}

func load(path string, stderr io.Writer) (*config.Config, bool) {
	cfg, err := config.Load(path, os.LookupEnv)
	if err != nil {
		var errs *config.Errors
		if errors.As(err, &errs) {
			fmt.Fprintf(stderr, "%s: %d error(s):\n%s\n", path, len(errs.List), strings.TrimRight(err.Error(), "\n"))
		} else {
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
		}
		return nil, false
	}
	return cfg, true
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fl, ok := parseFlags("check", args, stderr)
	if !ok {
		return 2
	}
	path := fl.config
	cfg, ok := load(path, stderr)
	if !ok {
		return 1
	}
	if _, err := app.New(cfg, slog.New(slog.DiscardHandler), app.Options{}); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return 1
	}
	fmt.Fprintf(stdout, "# %s: configuration OK; effective configuration (secrets redacted):\n", path)
	fmt.Fprint(stdout, cfg.Redacted())
	return 0
}

// newLogger returns the gateway's logger (text or JSON; under journald
// without timestamps and with priority prefixes) and its control, through
// which a reload changes the level and format.
func newLogger(cfg *config.Config, w io.Writer) (*slog.Logger, *logging.Control) {
	return logging.New(w, logging.Options{
		Level:    cfg.Gateway.LogLevel,
		Format:   cfg.Gateway.LogFormat,
		Journald: logging.UnderJournald(),
	})
}

func cmdRun(args []string, stderr io.Writer) int {
	fl, ok := parseFlags("run", args, stderr)
	if !ok {
		return 2
	}
	// From here SIGHUP asks for a reload instead of ending the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	path := fl.config
	cfg, ok := load(path, stderr)
	if !ok {
		fmt.Fprintln(stderr, "gateway: refusing to start; fix the errors above (gateway check -c FILE lists them)")
		return 1
	}
	log, logCtl := newLogger(cfg, stderr)
	a, err := app.New(cfg, log, app.Options{
		Version:    version,
		ConfigPath: path,
		SetLogging: func(level, format string) error {
			o := logCtl.Options() // keeps journald mode and the rate limits
			o.Level, o.Format = level, format
			return logCtl.Set(o)
		},
	})
	if err != nil {
		log.Error("refusing to start", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if fl.cpuProfile != "" {
		f, err := os.Create(fl.cpuProfile)
		if err != nil {
			log.Error("cpu profile", "err", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Error("cpu profile", "err", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	pidFile, err := writePIDFile(cfg.Gateway.DataDir)
	if err != nil {
		log.Error("refusing to start", "err", err)
		return 1
	}
	defer os.Remove(pidFile)
	// SIGHUP reloads the configuration file once the gateway is ready (one
	// received earlier waits); a bad file is refused and logged, and the
	// running configuration stays in force.
	ready := make(chan struct{})
	hupDone := make(chan struct{})
	go func() {
		defer close(hupDone)
		select {
		case <-ctx.Done():
			return
		case <-ready:
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading the configuration", "config", path)
				_ = a.ReloadFile() // the outcome is logged
			}
		}
	}()
	log.Info("starting", "version", version, "config", path, "gateway", cfg.Gateway.ID, "pid", os.Getpid())
	err = a.Run(ctx, func() { close(ready) })
	stop()
	<-hupDone
	if err != nil {
		log.Error("gateway failed", "err", err)
		return 1
	}
	return 0
}
