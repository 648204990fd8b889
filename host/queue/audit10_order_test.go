package queue

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/spool"
)

// crashAtDelete is the real spool, with every Delete made durable at once (as a concurrent Put's
// group commit may make it) and the log read at that moment: what a kill -9 right then would
// leave. A message whose delete is on disk must have the record that ended it in the log, or
// the record is lost for good (the message never comes back to be logged again).
type crashAtDelete struct {
	*spool.Spool
	logDir string

	mu      sync.Mutex
	missing []message.ID // deleted with no final record in the log at that moment
	deletes int
}

func (s *crashAtDelete) Delete(m *message.Message) error {
	if err := s.Spool.Delete(m); err != nil {
		return err
	}
	if err := s.Spool.Flush(); err != nil { // the delete is synced: a kill -9 now keeps it
		return err
	}
	final := false
	files, _ := filepath.Glob(filepath.Join(s.logDir, "*.jsonl"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec struct{ Type, ID string }
			if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.ID != string(m.ID) {
				continue
			}
			switch rec.Type {
			case "Delivery", "Bounce", "Expiration", "AdminBounce":
				final = true
			}
		}
	}
	s.mu.Lock()
	s.deletes++
	if !final {
		s.missing = append(s.missing, m.ID)
	}
	s.mu.Unlock()
	return nil
}

func (s *crashAtDelete) check(t *testing.T, want int) {
	t.Helper()
	eventually(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.deletes >= want }, "%d deletes", want)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.missing) > 0 {
		t.Fatalf("%d of %d messages left the spool (synced) before the record that ended them was logged: "+
			"a crash at that moment loses the record for good (%v)", len(s.missing), s.deletes, s.missing)
	}
}

func newCrashAtDelete(t *testing.T) *crashAtDelete {
	sp, err := spool.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return &crashAtDelete{Spool: sp}
}

// Every way a message ends (delivered, bounced, expired, bounced by an operator's rule) writes
// its record before its delete can reach the disk: a crash in between then delivers or logs it
// twice (allowed, bounded), never leaves a message gone with no record of its end.
func TestAudit10RecordBeforeDelete(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		send func(*fakeConn, string) (message.Reply, error)
	}{
		{"delivery", Config{RetryInterval: time.Hour, MaxAge: week}, nil},
		{"bounce", Config{RetryInterval: time.Hour, MaxAge: week}, func(*fakeConn, string) (message.Reply, error) {
			return message.Reply{}, message.Errorf(550, "5.1.1", "no such user")
		}},
		{"expiry", Config{RetryInterval: 40 * time.Minute, MaxAge: 30 * time.Minute}, func(*fakeConn, string) (message.Reply, error) {
			return message.Reply{}, errTemp
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newCrashAtDelete(t)
			h := newHarness(t, tc.cfg, func(o *Options) { o.Store = st })
			st.logDir = h.logDir
			h.dialer.send = tc.send
			h.submit(3)
			st.check(t, 3)
		})
	}
	t.Run("admin bounce", func(t *testing.T) {
		st := newCrashAtDelete(t)
		h := newHarness(t, Config{RetryInterval: time.Hour, MaxAge: week}, func(o *Options) { o.Store = st })
		st.logDir = h.logDir
		if _, _, err := h.m.Bounce(RuleRequest{Selector: Selector{Tenant: str("t1")}, Reason: "bad send", Duration: time.Hour}); err != nil {
			t.Fatal(err)
		}
		h.submitTo("t1@site.test", "a@site.test")
		st.check(t, 1)
	})
}
