package webhook

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSentRecordsDoNotFillTheBacklog: max_backlog bounds the records not yet sent. With the
// smallest max_backlog the config accepts (1 MiB) and the default segment size (16 MiB), a
// receiver that accepts everything gets every record, however many pass through: records it
// has acknowledged do not count against the limit, even while their segment is still being
// appended to.
func TestSentRecordsDoNotFillTheBacklog(t *testing.T) {
	rc := newReceiver()
	srv := httptest.NewServer(rc)
	defer srv.Close()
	opt := Options{Dir: t.TempDir(), URL: srv.URL, MaxBacklog: 1 << 20,
		RetryInterval: time.Millisecond, MaxRetryInterval: 10 * time.Millisecond}
	h, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	pad := strings.Repeat("x", 1000)
	rec := func(i int) []byte {
		return []byte(fmt.Sprintf(`{"type":"Delivery","id":"m%d","meta":{"pad":%q}}`+"\n", i, pad))
	}
	// 3 MiB in all, 256 KiB at a time, each chunk acknowledged before the next is written:
	// never more than a quarter of max_backlog waits unsent.
	// Half way, the relay restarts: the new queue knows what the cursor says was sent.
	const chunk, total = 256, 3 * 1024
	for i := 0; i < total; i++ {
		if i == total/2 {
			h.Close()
			if h, err = Open(opt); err != nil {
				t.Fatal(err)
			}
			h.Start()
		}
		h.Append(rec(i))
		if (i+1)%chunk != 0 {
			continue
		}
		if st := h.Stats(); st.Dropped != 0 {
			t.Fatalf("after %d records: %d dropped as over max_backlog although the receiver had acknowledged all before them (stats %+v)", i+1, st.Dropped, st)
		}
		rc.waitRecords(t, i+1)
	}
	h.Close()
}
