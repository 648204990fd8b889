package logs

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmta/wasmta/host/testutil"
)

// TestPartialWriteDoesNotSpoilTheNext: a record cut short by a full disk must not run into the
// next one once space returns; a log shipper reading wasmta.jsonl line by line would see one
// broken line and lose both. Real tmpfs filled by a ballast file.
func TestPartialWriteDoesNotSpoilTheNext(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	testutil.MountTmpfs(t, dir, 1<<20)
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	l.Log(Record{Type: Reception, ID: "first"}) // the file's first page has room left in it
	ballast := testutil.Ballast(t, dir, "ballast", 0)
	l.Log(Record{Type: Reception, ID: "big", Meta: map[string]string{"pad": strings.Repeat("x", 8000)}})
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	l.Log(Record{Type: Reception, ID: "after"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "wasmta.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("a broken line in the log: %v: %.80q", err, sc.Text())
		}
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, ",") != "first,after" {
		t.Fatalf("records %v, want first and after (big was refused for space)", ids)
	}
}
