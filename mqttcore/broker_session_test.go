package mqttcore

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/causeway/causeway/internal/testpeer"
)

// TestBrokerResumedSessionSubscribesInOrder: a persistent session that
// comes back with messages waiting may subscribe again (mochi refused it
// with 0x91), and gets its messages in the order they were published
// (patch 6).
func TestBrokerResumedSessionSubscribesInOrder(t *testing.T) {
	b := startTestBroker(t, BrokerOptions{Listen: "127.0.0.1:0", AllowAnonymous: true})
	sub := testpeer.Bin(t, "mosquitto_sub")
	port := fmt.Sprint(b.Addr().(interface{ String() string }).String()[strings.LastIndex(b.Addr().String(), ":")+1:])
	for _, v := range []string{"mqttv311", "mqttv5"} {
		t.Run(v, func(t *testing.T) {
			id := "resume-" + v
			args := []string{"-h", "127.0.0.1", "-p", port, "-V", v, "-c", "-i", id, "-q", "1", "-t", "resume/" + v}
			if v == "mqttv5" {
				args = append(args, "-x", "60")
			}
			if out, err := exec.Command(sub, append(args, "-E")...).CombinedOutput(); err != nil {
				t.Fatalf("first session: %v\n%s", err, out)
			}
			var want []string
			for i := 1; i <= 20; i++ {
				m := fmt.Sprintf("m%d", i)
				want = append(want, m)
				if err := b.Publish("resume/"+v, []byte(m), 1, false); err != nil {
					t.Fatal(err)
				}
			}
			out, err := exec.Command(sub, append(args, "-C", "20", "-W", "5")...).CombinedOutput()
			if err != nil {
				t.Fatalf("resumed session: %v\n%s", err, out)
			}
			if got := strings.Fields(string(out)); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("resumed session got %q, want %q", got, want)
			}
		})
	}
}
