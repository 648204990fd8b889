package webhook

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// receiver is a webhook endpoint that deduplicates on the batch id, as the docs tell
// receivers to, and records what it saw.
type receiver struct {
	mu       sync.Mutex
	fail     int           // answer 503 to this many more requests
	hold     chan struct{} // non-nil: the first accepted request holding holdID waits for it
	holdID   string
	held     bool
	batches  map[string]string // batch id -> body
	repeats  int
	bodyDiff []string
	records  map[string]int
	requests int
	auth     string
	changed  chan struct{}
}

func newReceiver() *receiver {
	return &receiver{batches: map[string]string{}, records: map[string]int{}, changed: make(chan struct{}, 1)}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.requests++
	rc.auth = r.Header.Get("Authorization")
	if rc.fail > 0 {
		rc.fail--
		rc.mu.Unlock()
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	id := r.Header.Get(BatchIDHeader)
	if prev, ok := rc.batches[id]; ok {
		rc.repeats++
		if prev != string(body) {
			rc.bodyDiff = append(rc.bodyDiff, id)
		}
	} else {
		rc.batches[id] = string(body)
		var recs []struct{ ID, Type string }
		if err := json.Unmarshal(body, &recs); err != nil {
			rc.bodyDiff = append(rc.bodyDiff, "bad JSON: "+err.Error())
		}
		for _, x := range recs {
			rc.records[x.ID+"/"+x.Type]++
		}
	}
	var hold chan struct{}
	if rc.hold != nil && strings.Contains(string(body), rc.holdID) {
		hold, rc.hold, rc.held = rc.hold, nil, true
	}
	rc.mu.Unlock()
	select {
	case rc.changed <- struct{}{}:
	default:
	}
	if hold != nil {
		<-hold // the sender gives up (Close) while we wait: the ack never reaches it
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) waitRecords(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rc.mu.Lock()
		got := len(rc.records)
		rc.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver has %d distinct records, want %d", got, n)
		}
		select {
		case <-rc.changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func line(i int) []byte {
	return []byte(fmt.Sprintf(`{"type":"Delivery","id":"m%d","meta":{}}`+"\n", i))
}

// TestExactlyOnceAcrossOutageAndRestart: the receiver is down (503) at first, then the
// sender is stopped while a batch the receiver processed waits for its answer, then a new
// sender on the same directory finishes. With batch-id deduplication every record arrives
// exactly once; the only repeat is that batch, byte for byte.
func TestExactlyOnceAcrossOutageAndRestart(t *testing.T) {
	rc := newReceiver()
	rc.fail = 3
	srv := httptest.NewServer(rc)
	defer srv.Close()
	dir := t.TempDir()
	opt := Options{Dir: dir, URL: srv.URL, BatchSize: 7, RetryInterval: 10 * time.Millisecond,
		MaxRetryInterval: 40 * time.Millisecond, SegmentSize: 1024, BearerToken: "s3cret"}

	// The last batch of the first 100 records (98 and 99: a short one) is held: the receiver
	// processes it but its answer never reaches the sender. Being short, it would grow if the
	// sender did not remember where it ended.
	hold := make(chan struct{})
	rc.hold, rc.holdID = hold, `"m99"`
	h, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		h.Append(line(i))
	}
	h.Start()
	rc.waitRecords(t, 100)
	if st := h.Stats(); st.FailedPosts != 3 || st.Failing {
		t.Fatalf("stats after the receiver's 3 refusals: %+v", st)
	}
	rc.mu.Lock()
	if !rc.held {
		t.Fatal("the batch with m99 was not held")
	}
	rc.mu.Unlock()
	closed := make(chan struct{})
	go func() { h.Close(); close(closed) }()
	<-closed
	close(hold)

	h, err = Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	for i := 100; i < 200; i++ {
		h.Append(line(i))
	}
	h.Start()
	rc.waitRecords(t, 200)
	// The second sender's counters (what /metrics shows) catch up once the receiver's
	// answers are in: its 100 new records at least (and the re-sent batch), none failed.
	for deadline := time.Now().Add(5 * time.Second); h.Stats().Records < 100; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stats: %+v, want at least 100 records sent", h.Stats())
		}
	}
	if st := h.Stats(); st.Batches < 15 || st.FailedPosts != 0 || st.Failing {
		t.Fatalf("stats after the restart: %+v", st)
	}
	h.Close()

	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i := 0; i < 200; i++ {
		if n := rc.records[fmt.Sprintf("m%d/Delivery", i)]; n != 1 {
			t.Errorf("m%d arrived %d times", i, n)
		}
	}
	if len(rc.bodyDiff) > 0 {
		t.Fatalf("a batch id came back with other records: %v", rc.bodyDiff)
	}
	if rc.repeats != 1 {
		t.Fatalf("%d repeated batches, want exactly the one in flight at the stop", rc.repeats)
	}
	if rc.auth != "Bearer s3cret" {
		t.Fatalf("Authorization %q", rc.auth)
	}
	// Sent segments are deleted: only the one being appended to remains.
	ents, _ := os.ReadDir(dir)
	var segs []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), segExt) {
			segs = append(segs, e.Name())
		}
	}
	if len(segs) != 1 {
		t.Fatalf("segments left: %v", segs)
	}
	t.Logf("%d requests (3 refused) for 200 records in batches of 7", rc.requests)

}

// TestCrashCutRecord: a segment whose last record was cut short (power loss) is sent up to
// its last whole record; new records go to a new segment and are sent too.
func TestCrashCutRecord(t *testing.T) {
	rc := newReceiver()
	srv := httptest.NewServer(rc)
	defer srv.Close()
	dir := t.TempDir()
	os.WriteFile(dir+"/0000000000000001.jsonl", append(line(1), []byte(`{"type":"Deli`)...), 0o640)
	h, err := Open(Options{Dir: dir, URL: srv.URL, RetryInterval: time.Millisecond, MaxRetryInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h.Append(line(2))
	h.Start()
	rc.waitRecords(t, 2)
	h.Close()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.records["m1/Delivery"] != 1 || rc.records["m2/Delivery"] != 1 || len(rc.records) != 2 {
		t.Fatalf("records %v", rc.records)
	}
}

func TestBacklogLimit(t *testing.T) {
	dir := t.TempDir()
	h, err := Open(Options{Dir: dir, URL: "http://127.0.0.1:1/", MaxBacklog: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		h.Append(line(i)) // 40 bytes each: two fit
	}
	h.Close()
	b, _ := os.ReadFile(dir + "/0000000000000001.jsonl")
	if strings.Count(string(b), "\n") != 2 || h.dropped != 8 {
		t.Fatalf("queued %q, dropped %d", b, h.dropped)
	}
	if st := h.Stats(); st.Dropped != 8 || st.BacklogBytes != int64(len(b)) {
		t.Fatalf("stats %+v, want 8 dropped and %d bytes waiting", st, len(b))
	}
}
