package app

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/causeway/causeway/config"
	"golang.org/x/crypto/bcrypt"
)

func parseBroker(t *testing.T, file string, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "broker_test.toml"), []byte(file), func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// [broker] reaches the broker's options: plaintext passwords hashed with
// bcrypt (none kept), hashes passed through, the filters, the listeners
// and the effective allow_anonymous.
func TestBrokerOptions(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("from-hash"), bcrypt.MinCost)
	cfg := parseBroker(t, `
[gateway]
id = "gw-01"
[broker]
listen = "0.0.0.0:0"
websocket = "127.0.0.1:0"
[[broker.user]]
name = "nodered"
password = "${NODERED_PW}"
publish = ["gw-01/+/+/set"]
subscribe = ["gw-01/#"]
[[broker.user]]
name = "dashboard"
password_hash = "`+string(hash)+`"
subscribe = ["gw-01/+/+/availability"]
`, map[string]string{"NODERED_PW": "nr-secret"})
	opts, err := brokerOptions(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if opts.Listen != "0.0.0.0:0" || opts.WebSocket != "127.0.0.1:0" || opts.TLSListen != "" || opts.AllowAnonymous {
		t.Fatalf("options %+v", opts)
	}
	if len(opts.Users) != 2 {
		t.Fatalf("users %+v", opts.Users)
	}
	nr, db := opts.Users[0], opts.Users[1]
	if nr.Name != "nodered" || strings.Join(nr.Publish, ",") != "gw-01/+/+/set" || strings.Join(nr.Subscribe, ",") != "gw-01/#" {
		t.Fatalf("nodered %+v", nr)
	}
	if cost, _ := bcrypt.Cost(nr.PasswordHash); cost != 10 || bcrypt.CompareHashAndPassword(nr.PasswordHash, []byte("nr-secret")) != nil {
		t.Fatalf("plaintext password not hashed at cost 10: %s", nr.PasswordHash)
	}
	if string(db.PasswordHash) != string(hash) || len(db.Publish) != 0 {
		t.Fatalf("dashboard %+v", db)
	}

	b, err := startBroker(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Addr() == nil || b.WSAddr() == nil || b.TLSAddr() != nil {
		t.Fatalf("listeners %v %v %v", b.Addr(), b.WSAddr(), b.TLSAddr())
	}
}

func TestBrokerOptionsTooLongPassword(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(strings.Repeat("x", 80)), 0o600); err != nil {
		t.Fatal(err)
	}
	file := "[gateway]\nid = \"gw\"\n[[broker.user]]\nname = \"u\"\npassword_file = \"" + pw + "\"\n"
	// gateway check refuses it, with the key and line.
	if _, err := config.Parse(filepath.Join(dir, "t.toml"), []byte(file), func(string) (string, bool) { return "", false }); err == nil ||
		!strings.Contains(err.Error(), "broker.user[0].password") || !strings.Contains(err.Error(), "at most 72") {
		t.Fatalf("80-byte password accepted by the config: %v", err)
	}
	// And the broker options refuse it too, should a config reach them.
	cfg := parseBroker(t, "[gateway]\nid = \"gw\"\n[[broker.user]]\nname = \"u\"\npassword = \"short\"\n", nil)
	cfg.Broker.Users[0].Password = config.Secret(strings.Repeat("x", 80))
	if _, err := brokerOptions(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), `broker.user[0] "u"`) {
		t.Fatalf("80-byte password: %v", err)
	}
}
