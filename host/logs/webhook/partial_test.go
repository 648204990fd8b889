package webhook

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmta/wasmta/host/testutil"
)

// TestPartialWriteDoesNotSpoilTheNext: a record cut short by a full disk (write(2) wrote part
// of it, then ENOSPC) must not run into the next record once space returns: the reader would
// see one broken line and both records would be lost. Real tmpfs filled by a ballast file.
func TestPartialWriteDoesNotSpoilTheNext(t *testing.T) {
	rc := newReceiver()
	srv := httptest.NewServer(rc)
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "webhook")
	testutil.MountTmpfs(t, dir, 1<<20)
	h, err := Open(Options{Dir: dir, URL: srv.URL, RetryInterval: time.Millisecond, MaxRetryInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.Append(line(1))                                 // the segment's first page now has room left in it
	ballast := testutil.Ballast(t, dir, "ballast", 0) // on the tmpfs: nothing else fills
	big := []byte(`{"type":"Delivery","id":"big","meta":{"pad":"` + strings.Repeat("x", 8000) + `"}}` + "\n")
	h.Append(big) // part of it fits in the page, the rest does not
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	h.Append(line(2))
	h.Start()
	rc.waitRecords(t, 2)
	h.Close()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.bodyDiff) > 0 || rc.records["m1/Delivery"] != 1 || rc.records["m2/Delivery"] != 1 {
		t.Fatalf("records %v, problems %v", rc.records, rc.bodyDiff)
	}
}
