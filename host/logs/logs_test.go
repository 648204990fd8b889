package logs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// readAll counts the records of every file in dir, gunzipping .gz files, by id.
func readAll(t *testing.T, dir string) (map[string]int, []string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		names = append(names, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = bytes.NewReader(b)
		if strings.HasSuffix(e.Name(), ".gz") {
			zr, err := gzip.NewReader(r)
			if err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
			r = zr
		}
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var rec Record
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatalf("%s: a broken line %q: %v", e.Name(), sc.Text(), err)
			}
			seen[rec.ID]++
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
	}
	return seen, names
}

// TestRotationUnderLoad: many writers, a small max_size, gzip, and logrotate-style renames
// with Reopen in between: every record is in exactly one file.
func TestRotationUnderLoad(t *testing.T) {
	dir := t.TempDir()
	l, err := New(Options{File: FileOptions{Dir: dir, MaxSize: 8 << 10, Compress: true}})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 500
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				l.Log(Record{Type: Delivery, ID: fmt.Sprintf("w%d-%d", w, i), Recipient: "r@example.com", Meta: map[string]string{}})
			}
		}()
	}
	// Meanwhile, an operator's logrotate: rename, then signal.
	renamed := 0
	for i := 0; i < 5; i++ {
		if err := os.Rename(filepath.Join(dir, FileName), filepath.Join(dir, fmt.Sprintf("moved.%d", i))); err != nil {
			t.Fatal(err)
		}
		renamed++
		if err := l.Reopen(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if err := l.Close(); err != nil { // waits for the compressions
		t.Fatal(err)
	}
	seen, names := readAll(t, dir)
	gz := 0
	for _, n := range names {
		if strings.HasSuffix(n, ".jsonl.gz") {
			gz++
		}
		if strings.HasSuffix(n, ".tmp") || (strings.HasPrefix(n, "wasmta-") && strings.HasSuffix(n, ".jsonl")) {
			t.Errorf("left behind: %s", n)
		}
	}
	if gz < 10 {
		t.Fatalf("%d rotated .gz files (%v); max_size 8KiB should have made dozens", gz, names)
	}
	for w := 0; w < writers; w++ {
		for i := 0; i < each; i++ {
			if id := fmt.Sprintf("w%d-%d", w, i); seen[id] != 1 {
				t.Errorf("record %s found %d times", id, seen[id])
			}
		}
	}
	if len(seen) != writers*each {
		t.Fatalf("%d distinct records, want %d", len(seen), writers*each)
	}
	t.Logf("%d records in %d files (%d gzipped, %d renamed)", writers*each, len(names), gz, renamed)
}

func TestRestartAppendsToTheSameFile(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		l, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		l.Log(Record{Type: Reception, ID: fmt.Sprint("m", i)})
		l.Close()
	}
	seen, names := readAll(t, dir)
	if len(names) != 1 || names[0] != FileName || seen["m0"] != 1 || seen["m1"] != 1 {
		t.Fatalf("files %v, records %v: want both records in %s", names, seen, FileName)
	}
	if st, _ := os.Stat(filepath.Join(dir, FileName)); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", st.Mode())
	}
}

func TestDailyRotation(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2025, 3, 1, 23, 59, 0, 0, time.UTC)
	f, err := OpenFile(FileOptions{Dir: dir, Daily: true, MaxBackups: 1, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	l := &Logger{out: f, file: f, now: func() time.Time { return now }}
	l.classify = nil
	l.write(Record{ID: "day1"})
	now = now.Add(2 * time.Minute)
	l.write(Record{ID: "day2"})
	now = now.Add(time.Minute)
	l.write(Record{ID: "day2b"})
	now = now.Add(24 * time.Hour)
	l.write(Record{ID: "day3"})
	f.Close()
	seen, names := readAll(t, dir)
	// day1 went into a backup that max_backups = 1 deleted when day2's file was rotated.
	if seen["day1"] != 0 || seen["day2"] != 1 || seen["day2b"] != 1 || seen["day3"] != 1 || len(names) != 2 {
		t.Fatalf("files %v, records %v", names, seen)
	}
	b, _ := os.ReadFile(filepath.Join(dir, FileName))
	if !strings.Contains(string(b), "day3") || strings.Contains(string(b), "day2") {
		t.Fatalf("live file holds %q", b)
	}
}

// TestRecoverAfterCrash: a rotated file left uncompressed and a half-written .gz.tmp, as a
// kill -9 during compression leaves them, are finished at the next start.
func TestRecoverAfterCrash(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "wasmta-20250101T000000.000000000Z.jsonl"), []byte(`{"id":"old"}`+"\n"), 0o640)
	os.WriteFile(filepath.Join(dir, "wasmta-20250101T000000.000000000Z.jsonl.gz.tmp"), []byte("partial"), 0o640)
	l, err := New(Options{File: FileOptions{Dir: dir, Compress: true}})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	seen, names := readAll(t, dir)
	if seen["old"] != 1 || len(names) != 2 {
		t.Fatalf("files %v, records %v", names, seen)
	}
}

func TestBounceClassification(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := &message.Message{ID: "x", Recipient: "r@example.com"}
	for _, tc := range []struct {
		typ  string
		r    message.Reply
		want string
	}{
		{Bounce, message.Reply{Code: 550, Enhanced: "5.1.1", Text: "user unknown", Command: "RCPT TO:<r@example.com>"}, "InvalidRecipient"},
		{Bounce, message.Reply{Code: 552, Enhanced: "5.2.2", Text: "mailbox full", Command: "."}, "QuotaIssues"},
		{Bounce, message.Reply{Code: 554, Enhanced: "5.7.1", Text: "spam", Command: "."}, "SpamBlock"},
		{TransientFailure, message.Reply{Code: 452, Enhanced: "4.2.2", Text: "over quota"}, "QuotaIssues"},
		{Delivery, message.Reply{Code: 250, Text: "OK", Command: "."}, ""},
	} {
		l.Log(For(tc.typ, m, tc.r))
		l.Close()
		l, _ = Open(dir)
		b, _ := os.ReadFile(filepath.Join(dir, FileName))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		var rec Record
		json.Unmarshal([]byte(lines[len(lines)-1]), &rec)
		if rec.BounceClassification != tc.want || rec.Response.Command != tc.r.Command {
			t.Errorf("%s %v: bounce_classification %q command %q, want %q %q", tc.typ, tc.r, rec.BounceClassification, rec.Response.Command, tc.want, tc.r.Command)
		}
	}
	l.Close()
}

// gate is a log output whose first write blocks until released, counting writes and records.
type gate struct {
	mu      sync.Mutex
	writes  []int // records per write
	entered chan struct{}
	release chan struct{}
}

func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	first := len(g.writes) == 0
	g.writes = append(g.writes, bytes.Count(p, []byte("\n")))
	g.mu.Unlock()
	if first {
		close(g.entered)
		<-g.release
	}
	return len(p), nil
}

// Records logged while a write is in progress go out together in the next write (one system
// call for many records), and Log returns only once its own record was written.
func TestRecordsLoggedTogetherShareOneWrite(t *testing.T) {
	g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	l, err := New(Options{Stdout: g})
	if err != nil {
		t.Fatal(err)
	}
	firstDone := make(chan struct{})
	go func() { l.Log(Record{Type: Reception, ID: "first"}); close(firstDone) }()
	<-g.entered // the first record's write is in progress and held
	const others = 10
	var wg sync.WaitGroup
	var returned sync.Map
	for i := 0; i < others; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.Log(Record{Type: Reception, ID: fmt.Sprint("other", i)})
			g.mu.Lock()
			written := len(g.writes)
			g.mu.Unlock()
			returned.Store(i, written)
		}()
	}
	// Every other record joins the pending batch (bounded poll on the logger's state).
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		n := bytes.Count(l.pending, []byte("\n"))
		l.mu.Unlock()
		if n == others {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records pending, want %d", n, others)
		}
		time.Sleep(time.Millisecond)
	}
	close(g.release)
	<-firstDone
	wg.Wait()
	if len(g.writes) != 2 || g.writes[0] != 1 || g.writes[1] != others {
		t.Fatalf("records per write %v, want [1 %d]", g.writes, others)
	}
	returned.Range(func(k, v any) bool {
		if v.(int) != 2 {
			t.Errorf("Log of record %v returned before its write", k)
		}
		return true
	})
}
