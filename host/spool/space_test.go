package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/testutil"
)

// These tests put the spool on a tmpfs of its own (they need root, and fail without it) and
// fill it with a ballast file. Badger's 64 MiB memtable must fit, with the reserve and ballast.
const (
	testFS      = 256 << 20
	testReserve = 64 << 20
)

// logBuf collects diagnostics for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }
func (l *logBuf) logger() *slog.Logger        { return slog.New(slog.NewTextHandler(l, nil)) }

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tmpfsSpool(t *testing.T) (fs, dir string) {
	fs = filepath.Join(t.TempDir(), "fs")
	testutil.MountTmpfs(t, fs, testFS)
	return fs, filepath.Join(fs, "spool")
}

func isStorageFull(err error) bool {
	var e *message.Error
	return errors.As(err, &e) && e.Code == 452 && e.Enhanced == "4.3.1" && e.Text == "insufficient system storage"
}

func TestRoomAndPutRefuseAtTheReserve(t *testing.T) {
	fs, dir := tmpfsSpool(t)
	var diag logBuf
	s, err := OpenContext(context.Background(), Options{Path: dir, MinFree: testReserve, Log: diag.logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Room(1 << 20); err != nil {
		t.Fatalf("room on an empty disk: %v", err)
	}
	kept := msg(0)
	if err := s.Put([]*message.Message{kept}, []byte("kept")); err != nil {
		t.Fatal(err)
	}

	ballast := testutil.Ballast(t, fs, "ballast", testReserve+1<<20)
	waitFor(t, "Room to see the ballast", 2*time.Second, func() bool { return s.Room(2<<20) != nil })
	if err := s.Room(2 << 20); !isStorageFull(err) {
		t.Fatalf("Room(2 MiB) with 1 MiB above the reserve: %v, want 452 4.3.1", err)
	}
	if err := s.Put([]*message.Message{msg(1)}, bytes.Repeat([]byte("b"), 2<<20)); !isStorageFull(err) {
		t.Fatalf("Put of 2 MiB with 1 MiB above the reserve: %v, want 452 4.3.1", err)
	}
	// Once refusing, it keeps refusing, even a small message or a MAIL without SIZE (Room(0)),
	// until space is back a margin above the reserve: 452 at MAIL rather than after DATA.
	for _, n := range []int64{4 << 10, 0} {
		if err := s.Room(n); !isStorageFull(err) {
			t.Fatalf("Room(%d) while below the reserve: %v, want 452 4.3.1", n, err)
		}
	}
	st := s.Stats()
	if !st.BelowReserve || st.SpaceRefusals < 2 || st.MinFree != testReserve || st.Free < testReserve || st.Free > testReserve+2<<20 {
		t.Fatalf("stats below the reserve: %+v", st)
	}
	// Deliveries go on: updates and deletes are never refused.
	kept.Attempts = 1
	if err := s.Update(kept); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(kept); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the below-reserve flag to clear", 5*time.Second, func() bool { return !s.Stats().BelowReserve })
	if err := s.Put([]*message.Message{msg(2)}, bytes.Repeat([]byte("b"), 2<<20)); err != nil {
		t.Fatalf("Put after space returned: %v", err)
	}
	log := diag.String()
	if n := strings.Count(log, "spool free space below spool.min_free"); n != 1 {
		t.Fatalf("%d below-reserve warnings, want 1:\n%s", n, log)
	}
	if n := strings.Count(log, "spool free space back above spool.min_free"); n != 1 {
		t.Fatalf("%d back-above notices, want 1:\n%s", n, log)
	}
}

// Free space is read from the kernel at most every 100 ms; Puts in between must still be
// counted, or a burst accepted on one stale reading would run through the reserve.
func TestConcurrentPutsCannotOverrunTheReserve(t *testing.T) {
	fs, dir := tmpfsSpool(t)
	s, err := OpenContext(context.Background(), Options{Path: dir, MinFree: testReserve})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	testutil.Ballast(t, fs, "ballast", testReserve+4<<20)
	s.space.refresh(true)
	body := bytes.Repeat([]byte("c"), 256<<10)
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted, refused := 0, 0
	for i := range 64 { // 16 MiB offered, 4 MiB above the reserve
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Put([]*message.Message{msg(i)}, body)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				accepted++
			case isStorageFull(err):
				refused++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if accepted == 0 || accepted > 16 || accepted+refused != 64 {
		t.Fatalf("%d accepted, %d refused: 4 MiB above the reserve holds at most 16 bodies of 256 KiB", accepted, refused)
	}
	if free := testutil.FreeBytes(t, fs); free < testReserve-1<<20 {
		t.Fatalf("%d bytes free after the burst: the reserve (%d) was overrun", free, testReserve)
	}
}

// Opening replays Badger's logs, which faults on a full disk: Open waits for room, logging
// why, until space returns or it is told to stop.
func TestOpenWaitsForSpace(t *testing.T) {
	fs, dir := tmpfsSpool(t)
	s, err := OpenContext(context.Background(), Options{Path: dir, MinFree: testReserve})
	if err != nil {
		t.Fatal(err)
	}
	m := msg(0)
	if err := s.Put([]*message.Message{m}, []byte("survives")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ballast := testutil.Ballast(t, fs, "ballast", 0)

	t.Run("stopped", func(t *testing.T) {
		var diag logBuf
		ctx, cancel := context.WithCancel(context.Background())
		res := make(chan error, 1)
		go func() {
			s, err := OpenContext(ctx, Options{Path: dir, MinFree: testReserve, Log: diag.logger()})
			if err == nil {
				s.Close()
			}
			res <- err
		}()
		waitFor(t, "the waiting notice", 5*time.Second, func() bool { return strings.Contains(diag.String(), "spool: waiting for free space") })
		if !strings.Contains(diag.String(), "free=0") {
			t.Fatalf("waiting notice lacks the numbers:\n%s", diag.String())
		}
		select {
		case err := <-res:
			t.Fatalf("Open returned on a full disk: %v", err)
		default:
		}
		cancel()
		if err := <-res; !errors.Is(err, context.Canceled) {
			t.Fatalf("Open after cancel: %v", err)
		}
	})

	t.Run("space returns", func(t *testing.T) {
		var diag logBuf
		res := make(chan *Spool, 1)
		go func() {
			s, err := OpenContext(context.Background(), Options{Path: dir, MinFree: testReserve, Log: diag.logger()})
			if err != nil {
				t.Error(err)
			}
			res <- s
		}()
		waitFor(t, "the waiting notice", 5*time.Second, func() bool { return strings.Contains(diag.String(), "spool: waiting for free space") })
		if err := os.Remove(ballast); err != nil {
			t.Fatal(err)
		}
		var s *Spool
		select {
		case s = <-res:
		case <-time.After(10 * time.Second):
			t.Fatalf("Open still waiting after space returned:\n%s", diag.String())
		}
		if s == nil {
			return
		}
		defer s.Close()
		var got []*message.Message
		if err := s.Scan(func(m *message.Message) error { got = append(got, m); return nil }, nil); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ID != m.ID {
			t.Fatalf("after the wait: %v", got)
		}
	})
}

func TestDecodeRecordRejectsRecordsThatCannotBeDeleted(t *testing.T) {
	m := msg(0)
	good := fmt.Sprintf(`{"id":%q,"recipient":"r@y.test"}`, m.ID)
	for _, c := range []struct {
		name, key, val string
		ok             bool
	}{
		{"valid", "m/" + string(m.ID), good, true},
		{"id differs from key", "m/0123", good, false},
		{"no id", "m/" + string(m.ID), `{"recipient":"r@y.test"}`, false},
		{"not json", "m/" + string(m.ID), `{"id":`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := decodeRecord([]byte(c.key), []byte(c.val))
			if (err == nil) != c.ok {
				t.Fatalf("decodeRecord: %v, %v", got, err)
			}
		})
	}
}
