package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/causeway/causeway/mqttcore"
)

// cmdHashPassword reads a password from standard input (its first line) and
// prints its bcrypt hash, for password_hash in a [[broker.user]]:
//
//	gateway hash-password < nodered.pw
//	printf '%s' "$PW" | gateway hash-password
//
// On a terminal it asks for the password twice, without echo.
func cmdHashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hash-password", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: gateway hash-password < FILE\n\n"+
			"Reads a password (the first line of standard input) and prints its bcrypt hash\n"+
			"(cost %d) for password_hash in a [[broker.user]] of gateway.toml.\n", mqttcore.PasswordHashCost)
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gateway hash-password: unexpected argument %q (the password is read from standard input)\n", fs.Arg(0))
		return 2
	}
	var pw string
	var err error
	if f, ok := stdin.(*os.File); ok && isTerminal(f) {
		pw, err = promptPassword(f, stderr)
	} else {
		pw, err = readPassword(stdin)
	}
	if err == nil {
		var h []byte
		if h, err = mqttcore.HashPassword([]byte(pw)); err == nil {
			fmt.Fprintln(stdout, string(h))
			return 0
		}
	}
	fmt.Fprintf(stderr, "gateway hash-password: %v\n", err)
	return 1
}

// readPassword returns the first line of r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("no password on standard input")
	}
	return line, nil
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// promptPassword asks twice on the terminal f, with echo off (stty).
func promptPassword(f *os.File, stderr io.Writer) (string, error) {
	stty := func(arg string) error {
		cmd := exec.Command("stty", arg)
		cmd.Stdin = f
		return cmd.Run()
	}
	if err := stty("-echo"); err != nil {
		return "", fmt.Errorf("cannot turn off echo (%v): pipe the password in instead", err)
	}
	defer func() { _ = stty("echo") }()
	r := bufio.NewReader(f)
	read := func(prompt string) (string, error) {
		fmt.Fprint(stderr, prompt)
		line, err := r.ReadString('\n')
		fmt.Fprintln(stderr)
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	pw, err := read("Password: ")
	if err != nil {
		return "", err
	}
	again, err := read("Again: ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("the passwords differ")
	}
	if pw == "" {
		return "", errors.New("empty password")
	}
	return pw, nil
}
