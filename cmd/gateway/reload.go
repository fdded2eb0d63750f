package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pidFileName is the running gateway's pid, in data_dir.
const pidFileName = "gateway.pid"

// writePIDFile records this process's pid in dataDir for `gateway reload`.
func writePIDFile(dataDir string) (string, error) {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return "", fmt.Errorf("data_dir: %w", err)
	}
	p := filepath.Join(dataDir, pidFileName)
	if err := os.WriteFile(p, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("pid file: %w", err)
	}
	return p, nil
}

// cmdReload checks the configuration file, then asks the running gateway
// to apply it: over the HTTP listener when [http] is configured (the
// answer says whether it was applied), else with SIGHUP to the pid in
// data_dir (the outcome is in the gateway's log).
func cmdReload(args []string, stdout, stderr io.Writer) int {
	fl, ok := parseFlags("reload", args, stderr)
	if !ok {
		return 2
	}
	cfg, ok := load(fl.config, stderr)
	if !ok {
		fmt.Fprintln(stderr, "gateway reload: not sent; the running gateway keeps its configuration")
		return 1
	}
	if cfg.HTTP != nil {
		msg, err := reloadOverHTTP(cfg.HTTP.Listen)
		if err == nil {
			fmt.Fprintln(stdout, msg)
			return 0
		}
		var refused *refusedError
		if errors.As(err, &refused) {
			fmt.Fprintf(stderr, "gateway reload: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "gateway reload: HTTP %s: %v; trying SIGHUP\n", cfg.HTTP.Listen, err)
	}
	p := filepath.Join(cfg.Gateway.DataDir, pidFileName)
	b, err := os.ReadFile(p)
	if err != nil {
		fmt.Fprintf(stderr, "gateway reload: is the gateway running? %v\n", err)
		return 1
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		fmt.Fprintf(stderr, "gateway reload: %s: not a pid: %q\n", p, strings.TrimSpace(string(b)))
		return 1
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		fmt.Fprintf(stderr, "gateway reload: signal pid %d (from %s): %v\n", pid, p, err)
		return 1
	}
	fmt.Fprintf(stdout, "sent SIGHUP to the gateway (pid %d); its log says whether the configuration was applied\n", pid)
	return 0
}

// refusedError is a reload the gateway answered and refused.
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return e.msg }

// reloadOverHTTP posts to /-/reload on the listener at listen (an
// unspecified host means this machine).
func reloadOverHTTP(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	c := &http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Post("http://"+net.JoinHostPort(host, port)+"/-/reload", "text/plain", nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := strings.TrimSpace(string(body))
	switch {
	case resp.StatusCode == http.StatusOK:
		return msg, nil
	case resp.StatusCode == http.StatusUnprocessableEntity:
		return "", &refusedError{msg}
	}
	return "", fmt.Errorf("%s: %s", resp.Status, msg)
}
