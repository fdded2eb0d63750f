package e2e

// The Debian package (issue 7): `make package-amd64` builds the .deb from
// packaging/ with nfpm; these tests look inside it and, as root, install it on
// this machine, check what the install did, and purge it again.

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// debInstall is the hint for the Debian tools these tests need.
const debInstall = "apt-get install dpkg systemd adduser make (CI runs as root on Debian 12, where all of them are present)"

// debBin returns the path of a program the package tests need, failing the
// test loudly (never skipping) when it is missing.
func debBin(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	t.Fatalf("%s is not installed: %s", name, debInstall)
	return ""
}

// runCmd runs a command with a deadline and returns its combined output.
func runCmd(t *testing.T, timeout time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	// On timeout the whole process group goes, and a child left holding the
	// output pipe cannot keep the test waiting.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("%s %s: timed out after %v", name, strings.Join(args, " "), timeout)
	}
	return string(out), err
}

// mustRun is runCmd that fails the test on any error.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := runCmd(t, 2*time.Minute, "", nil, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// debVersion runs packaging/debversion.sh.
func debVersion(t *testing.T, version string) string {
	t.Helper()
	root := repoRoot(t)
	out, err := runCmd(t, 30*time.Second, root, nil, "bash", filepath.Join(root, "packaging", "debversion.sh"), version)
	if err != nil {
		t.Fatalf("debversion.sh %q: %v\n%s", version, err, out)
	}
	return strings.TrimSpace(out)
}

// TestPackageDebVersion: git describe strings become valid Debian versions
// that sort as the releases do.
func TestPackageDebVersion(t *testing.T) {
	dpkg := debBin(t, "dpkg")
	cases := map[string]string{
		"v1.2.0":                   "1.2.0",
		"v1.2.0-rc1":               "1.2.0~rc1",
		"v1.2.0-14-g1e0dcd6":       "1.2.0+14.g1e0dcd6",
		"v1.2.0-14-g1e0dcd6-dirty": "1.2.0+14.g1e0dcd6.dirty",
		"v1.2.0-dirty":             "1.2.0+dirty",
		"v1.2.0-rc1-3-gabc1234":    "1.2.0~rc1+3.gabc1234",
		"0000000":                  "0.0.0~git0000000", // not a commit here: no count
		"0000000-dirty":            "0.0.0~git0000000.dirty",
		"dev":                      "0.0.0~dev",
	}
	// A bare hash of this repository gets the commit count, so later snapshots sort higher.
	root := repoRoot(t)
	if h, err := runCmd(t, 30*time.Second, root, nil, "git", "rev-parse", "--short", "HEAD"); err == nil {
		h = strings.TrimSpace(h)
		n, err := runCmd(t, 30*time.Second, root, nil, "git", "rev-list", "--count", "HEAD")
		if err != nil {
			t.Fatalf("git rev-list: %v %s", err, n)
		}
		cases[h] = "0.0.0~git" + strings.TrimSpace(n) + ".g" + h
	} else if os.Getenv("CI") == "true" {
		t.Fatalf("git rev-parse in %s: %v %s", root, err, h)
	}
	for in, want := range cases {
		got := debVersion(t, in)
		if got != want {
			t.Errorf("debversion.sh %q = %q, want %q", in, got, want)
		}
		if out, err := runCmd(t, 10*time.Second, "", nil, dpkg, "--validate-version", got); err != nil {
			t.Errorf("%q is not a valid Debian version: %v %s", got, err, out)
		}
	}
	order := []string{"0.0.0~dev", "0.0.0~git5.g1e0dcd6", "0.0.0~git12.gabc1234", "0.0.0~git12.gabc1234.dirty",
		"1.2.0~rc1", "1.2.0~rc1+3.gabc1234", "1.2.0", "1.2.0+14.g1e0dcd6", "1.2.0+14.g1e0dcd6.dirty", "1.10.0"}
	for i := 1; i < len(order); i++ {
		if out, err := runCmd(t, 10*time.Second, "", nil, dpkg, "--compare-versions", order[i-1], "lt", order[i]); err != nil {
			t.Errorf("want %s < %s: %v %s", order[i-1], order[i], err, out)
		}
	}
}

// buildDeb runs `make package-amd64` with its output in a temp dir and returns
// the .deb and the static binary in it.
func buildDeb(t *testing.T) (deb, bin string) {
	t.Helper()
	debBin(t, "make")
	root := repoRoot(t)
	out := t.TempDir()
	// Not the jobserver of a `make test` this runs under.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "MAKEFLAGS=") || strings.HasPrefix(kv, "MFLAGS=") || strings.HasPrefix(kv, "MAKELEVEL=")
	})
	start := time.Now()
	log, err := runCmd(t, 8*time.Minute, root, env, "make", "--no-print-directory", "package-amd64", "BIN="+out)
	if err != nil {
		t.Fatalf("make package-amd64: %v\n%s", err, log)
	}
	t.Logf("make package-amd64: %v", time.Since(start).Round(time.Millisecond))
	debs, _ := filepath.Glob(filepath.Join(out, "causeway_*_amd64.deb"))
	if len(debs) != 1 {
		t.Fatalf("make package-amd64 made %v, want one causeway_*_amd64.deb\n%s", debs, log)
	}
	return debs[0], filepath.Join(out, "gateway-linux-amd64")
}

// debEntry is one line of `dpkg-deb -c`.
type debEntry struct{ mode, owner string }

func debContents(t *testing.T, deb string) map[string]debEntry {
	t.Helper()
	entries := map[string]debEntry{}
	for _, line := range strings.Split(mustRun(t, debBin(t, "dpkg-deb"), "-c", deb), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		entries[strings.TrimPrefix(f[5], ".")] = debEntry{mode: f[0], owner: f[1]}
	}
	return entries
}

// unitLines returns the directives of a unit file, comments and blank lines left out.
func unitLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, ";") {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestPackageDeb builds the amd64 .deb and checks what it holds; as root it
// installs it here (dpkg -i), checks the user, the permissions, the enabled
// unit (systemd-analyze verify and security), reinstalls it over a changed
// conffile, removes and purges it, and leaves the machine as it was.
func TestPackageDeb(t *testing.T) {
	dpkgDeb := debBin(t, "dpkg-deb")
	deb, bin := buildDeb(t)

	// The binary is static: no interpreter, no shared libraries (CGO_ENABLED=0).
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has an ELF interpreter: not a static build", bin)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v: not a static build", bin, libs)
	}
	f.Close()

	// Control fields: the version is the binary's, made Debian-valid.
	verOut := mustRun(t, bin, "version")
	fields := strings.Fields(verOut)
	if len(fields) < 3 {
		t.Fatalf("gateway version printed %q", verOut)
	}
	want := map[string]string{
		"Package":      "causeway",
		"Architecture": "amd64",
		"Version":      debVersion(t, fields[2]),
		"Depends":      "adduser",
	}
	for field, w := range want {
		if got := strings.TrimSpace(mustRun(t, dpkgDeb, "-f", deb, field)); got != w {
			t.Errorf("control field %s = %q, want %q", field, got, w)
		}
	}

	// Files, with their modes.
	files := debContents(t, deb)
	for path, w := range map[string]debEntry{
		"/usr/bin/causeway":                    {"-rwxr-xr-x", "root/root"},
		"/lib/systemd/system/causeway.service": {"-rw-r--r--", "root/root"},
		"/etc/causeway/gateway.toml":           {"-rw-r-----", "root/root"},
		"/etc/default/causeway":                {"-rw-------", "root/root"},
	} {
		if got, ok := files[path]; !ok {
			t.Errorf("the .deb has no %s; it has %v", path, files)
		} else if got != w {
			t.Errorf("%s is %v in the .deb, want %v", path, got, w)
		}
	}

	// Conffiles: the configuration survives upgrades.
	conf := strings.Fields(mustRun(t, dpkgDeb, "-I", deb, "conffiles"))
	sort.Strings(conf)
	if strings.Join(conf, " ") != "/etc/causeway/gateway.toml /etc/default/causeway" {
		t.Errorf("conffiles = %v, want /etc/causeway/gateway.toml and /etc/default/causeway", conf)
	}
	info := mustRun(t, dpkgDeb, "-I", deb)
	ctrl := t.TempDir()
	mustRun(t, dpkgDeb, "-e", deb, ctrl)
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if !strings.Contains(info, s) {
			t.Errorf("the .deb has no %s script:\n%s", s, info)
			continue
		}
		if out, err := runCmd(t, 10*time.Second, "", nil, "sh", "-n", filepath.Join(ctrl, s)); err != nil {
			t.Errorf("%s: %v %s", s, err, out)
		}
	}

	// The shipped configuration passes `check`, with data_dir where the unit's
	// StateDirectory= puts it.
	tree := t.TempDir()
	mustRun(t, dpkgDeb, "-x", deb, tree)
	checked := mustRun(t, filepath.Join(tree, "usr/bin/causeway"), "check", "-c", filepath.Join(tree, "etc/causeway/gateway.toml"))
	if !strings.Contains(checked, `data_dir = "/var/lib/causeway"`) {
		t.Errorf("the shipped gateway.toml's data_dir is not /var/lib/causeway:\n%s", checked)
	}
	unit := unitLines(t, filepath.Join(tree, "lib/systemd/system/causeway.service"))
	for _, l := range []string{
		"User=causeway", "SupplementaryGroups=dialout", "StateDirectory=causeway",
		"ExecStart=/usr/bin/causeway run -c /etc/causeway/gateway.toml",
		"ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"ProtectKernelTunables=yes", "ProtectControlGroups=yes", "LockPersonality=yes",
		"MemoryDenyWriteExecute=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
		"WantedBy=multi-user.target",
	} {
		if !slices.Contains(unit, l) {
			t.Errorf("causeway.service lacks %q", l)
		}
	}
	for _, prefix := range []string{"StartLimitIntervalSec=", "StartLimitBurst="} {
		if !slices.ContainsFunc(unit, func(l string) bool { return strings.HasPrefix(l, prefix) }) {
			t.Errorf("causeway.service has no %s (start limit)", prefix)
		}
	}
	// Serial ports must stay reachable, also USB adapters plugged in later.
	for _, l := range unit {
		for _, bad := range []string{"PrivateDevices=yes", "PrivateDevices=true", "DeviceAllow=", "DevicePolicy=closed", "DevicePolicy=strict", "PrivateUsers=yes", "ProtectClock=yes"} {
			if strings.HasPrefix(l, bad) {
				t.Errorf("causeway.service has %q: it would cut the gateway off its serial ports", l)
			}
		}
	}
	if t.Failed() {
		return
	}

	installAndPurge(t, deb)
}

// installAndPurge is the part of TestPackageDeb that needs root.
func installAndPurge(t *testing.T, deb string) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("installing the .deb (dpkg -i) needs root; CI runs as root")
		}
		t.Skip("not root: the .deb is built and inspected, but installing it here (dpkg -i, then dpkg --purge) needs root; CI runs it")
	}
	dpkg := debBin(t, "dpkg")
	analyze := debBin(t, "systemd-analyze")
	debBin(t, "adduser")
	if out, err := runCmd(t, 30*time.Second, "", nil, "dpkg-query", "-W", "-f", "${db:Status-Status}", "causeway"); err == nil && strings.TrimSpace(out) != "not-installed" {
		t.Fatalf("the causeway package is already on this machine (%s): this test installs and purges its own build, "+
			"so remove it first: dpkg --purge causeway", strings.TrimSpace(out))
	}
	_, err := user.Lookup("causeway")
	userBefore := err == nil
	t.Cleanup(func() {
		if out, err := runCmd(t, 2*time.Minute, "", nil, dpkg, "--purge", "causeway"); err != nil {
			t.Errorf("cleanup: dpkg --purge causeway: %v\n%s", err, out)
		}
		if !userBefore {
			if _, err := user.Lookup("causeway"); err == nil {
				if out, err := runCmd(t, time.Minute, "", nil, debBin(t, "userdel"), "causeway"); err != nil {
					t.Errorf("cleanup: userdel causeway: %v\n%s", err, out)
				}
			}
			if _, err := user.LookupGroup("causeway"); err == nil {
				if out, err := runCmd(t, time.Minute, "", nil, debBin(t, "groupdel"), "causeway"); err != nil {
					t.Errorf("cleanup: groupdel causeway: %v\n%s", err, out)
				}
			}
		}
	})
	systemdRunning := isDir("/run/systemd/system")

	// A first install: the user, the permissions, enabled but not started.
	out := mustRun(t, dpkg, "-i", deb)
	if !strings.Contains(out, "systemctl start causeway") {
		t.Errorf("a first install should say how to start the gateway:\n%s", out)
	}
	u, err := user.Lookup("causeway")
	if err != nil {
		t.Fatalf("no user causeway after dpkg -i: %v\n%s", err, out)
	}
	groups := strings.Fields(mustRun(t, "id", "-nG", "causeway"))
	if !slices.Contains(groups, "dialout") || !slices.Contains(groups, "causeway") {
		t.Errorf("user causeway is in groups %v, want causeway and dialout", groups)
	}
	if u.HomeDir != "/var/lib/causeway" {
		t.Errorf("user causeway's home is %q", u.HomeDir)
	}
	g, err := user.LookupGroup("causeway")
	if err != nil {
		t.Fatal(err)
	}
	checkPerm := func(path string, mode os.FileMode, uid, gid string) {
		t.Helper()
		st, err := os.Stat(path)
		if err != nil {
			t.Errorf("after install: %v", err)
			return
		}
		sys := st.Sys().(*syscall.Stat_t)
		if st.Mode().Perm() != mode || fmt.Sprint(sys.Uid) != uid || fmt.Sprint(sys.Gid) != gid {
			t.Errorf("%s: mode %v uid %d gid %d, want %v uid %s gid %s", path, st.Mode().Perm(), sys.Uid, sys.Gid, mode, uid, gid)
		}
	}
	checkPerm("/etc/causeway/gateway.toml", 0o640, "0", g.Gid)
	checkPerm("/etc/default/causeway", 0o600, "0", "0")
	checkPerm("/var/lib/causeway", 0o750, u.Uid, u.Gid)
	checkPerm("/usr/bin/causeway", 0o755, "0", "0")

	// The service user can read its configuration, and it is valid.
	if out, err := runCmd(t, time.Minute, "", nil, debBin(t, "runuser"), "-u", "causeway", "--",
		"/usr/bin/causeway", "check", "-c", "/etc/causeway/gateway.toml"); err != nil {
		t.Errorf("causeway check -c /etc/causeway/gateway.toml as user causeway: %v\n%s", err, out)
	}

	// The service user runs the shipped configuration: it writes its data_dir,
	// reloads on SIGHUP (the unit's ExecReload) and stops on SIGTERM. In a
	// private network namespace, so the default ports of this machine are left alone.
	script := fmt.Sprintf(`set -e
%[1]s link set lo up
%[2]s --reuid=causeway --regid=causeway --init-groups -- /usr/bin/causeway run -c /etc/causeway/gateway.toml >/dev/null 2>"$LOG" &
gw=$!
trap 'kill -KILL $gw 2>/dev/null || true' EXIT
ready() { for i in $(seq 1 100); do grep -q "$1" "$LOG" && return 0; sleep 0.1; done; echo "no '$1' in the log"; return 1; }
ready "gateway ready"
[ "$(stat -c %%u /var/lib/causeway/gateway.pid)" = "$(id -u causeway)" ] || { echo "gateway.pid is not the service user's"; exit 1; }
kill -HUP $gw
ready "configuration reloaded"
kill -TERM $gw
wait $gw
`, debBin(t, "ip"), debBin(t, "setpriv"))
	runLog := filepath.Join(t.TempDir(), "gateway.log")
	if out, err := runCmd(t, time.Minute, "", append(os.Environ(), "LOG="+runLog), debBin(t, "unshare"), "-n", "sh", "-c", script); err != nil {
		log, _ := os.ReadFile(runLog)
		t.Errorf("the installed gateway, run as user causeway with /etc/causeway/gateway.toml: %v\n%s\n--- its log:\n%s", err, out, log)
	}

	// Enabled, through deb-systemd-helper (also without a running systemd).
	const wants = "/etc/systemd/system/multi-user.target.wants/causeway.service"
	if target, err := os.Readlink(wants); err != nil || target != "/lib/systemd/system/causeway.service" {
		t.Errorf("causeway.service is not enabled: %s -> %q (%v)", wants, target, err)
	}
	if systemdRunning {
		if out, _ := runCmd(t, 30*time.Second, "", nil, "systemctl", "is-active", "causeway"); strings.TrimSpace(out) != "inactive" {
			t.Errorf("a first install must not start the gateway: systemctl is-active causeway = %q", strings.TrimSpace(out))
		}
	}

	// systemd-analyze verify accepts the unit. It exits 0 on unknown keys and
	// bad values too (it only warns), so any line naming the unit fails the
	// test; and a broken copy must draw such a line, or verify checks nothing here.
	verify := func(path string) string {
		out, err := runCmd(t, time.Minute, "", append(os.Environ(), "SYSTEMD_LOG_LEVEL=notice"), analyze, "verify", "--man=no", path)
		if err != nil {
			t.Errorf("systemd-analyze verify %s: %v\n%s", path, err, out)
		}
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "causeway") {
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "\n")
	}
	if msg := verify("/lib/systemd/system/causeway.service"); msg != "" {
		t.Errorf("systemd-analyze verify causeway.service:\n%s", msg)
	}
	unit, err := os.ReadFile("/lib/systemd/system/causeway.service")
	if err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(t.TempDir(), "causeway.service")
	if err := os.WriteFile(broken, []byte(strings.Replace(string(unit), "[Service]\n", "[Service]\nProtectSystem=sometimes\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg := verify(broken); !strings.Contains(msg, "ProtectSystem") && !strings.Contains(msg, "protect system") {
		t.Errorf("systemd-analyze verify did not notice ProtectSystem=sometimes (%q): it checks nothing here", msg)
	}
	// The sandbox: systemd's own exposure score (0 = locked down, 10 = none);
	// offline, so no running systemd is needed. 2.5 or less is "OK".
	if out, err := runCmd(t, time.Minute, "", nil, analyze, "security", "--offline=true", "--threshold=25", "/lib/systemd/system/causeway.service"); err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.5 (%v):\n%s", err, out)
	} else if i := strings.Index(out, "Overall exposure level"); i >= 0 {
		t.Log(strings.TrimSpace(out[i:]))
	}

	// An upgrade (here a reinstall) keeps a changed conffile and its permissions.
	const mark = "\n# changed by the admin (TestPackageDeb)\n"
	if err := appendFile("/etc/causeway/gateway.toml", mark); err != nil {
		t.Fatal(err)
	}
	out = mustRun(t, dpkg, "-i", "--force-confold", deb)
	if strings.Contains(out, "systemctl start causeway") {
		t.Errorf("an upgrade printed the first-install hint:\n%s", out)
	}
	if b, err := os.ReadFile("/etc/causeway/gateway.toml"); err != nil || !strings.Contains(string(b), mark) {
		t.Errorf("the reinstall did not keep the changed /etc/causeway/gateway.toml (%v)", err)
	}
	checkPerm("/etc/causeway/gateway.toml", 0o640, "0", g.Gid)

	// Remove: the binary goes, the configuration and the data stay.
	mustRun(t, dpkg, "-r", "causeway")
	for _, p := range []string{"/usr/bin/causeway", "/lib/systemd/system/causeway.service"} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after dpkg -r: %s is still there (%v)", p, err)
		}
	}
	for _, p := range []string{"/etc/causeway/gateway.toml", "/etc/default/causeway", "/var/lib/causeway"} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("after dpkg -r: %v (a remove keeps configuration and data)", err)
		}
	}

	// Purge: nothing of the package is left.
	mustRun(t, dpkg, "--purge", "causeway")
	for _, p := range []string{"/etc/causeway", "/etc/default/causeway", "/var/lib/causeway", wants,
		"/etc/systemd/system/causeway.service", // the mask set by remove
		"/var/lib/systemd/deb-systemd-helper-enabled/causeway.service.dsh-also",
		"/var/lib/systemd/deb-systemd-helper-masked/causeway.service"} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after dpkg --purge: %s is still there (%v)", p, err)
		}
	}
	if out, err := runCmd(t, 30*time.Second, "", nil, "dpkg-query", "-W", "-f", "${db:Status-Status}", "causeway"); err == nil && strings.TrimSpace(out) != "not-installed" {
		t.Errorf("after dpkg --purge the package is %q", strings.TrimSpace(out))
	}
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
