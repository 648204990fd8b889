package plugin

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/wasmta/wasmta/abi"
)

// A staged key the message already has counts once toward abi.MaxMetaKeys: a hook that changes
// an existing key (here 65 times) on a message with 63 keys may still add a 64th, and only a
// 65th is refused (testdata/metacount.wat returns 1 when "new" is refused).
func TestMetaLimitCountsAKeyOnce(t *testing.T) {
	for _, tc := range []struct {
		keys   int // on the message before the hook, k0 among them
		accept bool
	}{
		{abi.MaxMetaKeys - 1, true},
		{abi.MaxMetaKeys, false},
	} {
		t.Run(fmt.Sprint(tc.keys), func(t *testing.T) {
			m := testMessage()
			m.Meta = map[string]string{}
			for i := range tc.keys {
				m.Meta[fmt.Sprintf("k%d", i)] = "old"
			}
			_, err := NewChain(mustLoad(t, "metacount")).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m)
			if tc.accept {
				if err != nil {
					t.Fatalf("the new key was refused: %v", err)
				}
				if len(m.Meta) != abi.MaxMetaKeys || m.Meta["new"] != "v" || m.Meta["k0"] != "v" {
					t.Fatalf("%d keys, new=%q k0=%q", len(m.Meta), m.Meta["new"], m.Meta["k0"])
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than %d meta keys", abi.MaxMetaKeys)) {
				t.Fatalf("a key beyond %d: %v, want the hook to fail with the Limit text", abi.MaxMetaKeys, err)
			}
			if len(m.Meta) != tc.keys || m.Meta["k0"] != "old" {
				t.Fatalf("a failed hook changed the meta: %d keys, k0=%q", len(m.Meta), m.Meta["k0"])
			}
		})
	}
}

// longValue is the value testdata/longheader.wat adds: 998 bytes of 9-letter words.
func longValue() string {
	var b strings.Builder
	for i := range abi.MaxHeaderValue {
		if i%10 == 9 {
			b.WriteByte(' ')
		} else {
			b.WriteByte(byte('a' + i/10%26))
		}
	}
	return b.String()
}

// A field a plugin adds is folded when "Name: value" would be longer than 998 bytes, so that no
// line of the message is longer than RFC 5321's 1000 octets with its CRLF (§4.5.3.1.6), and it
// unfolds (RFC 5322 §2.2.3) to what the plugin set. A value with nowhere to fold is Limit.
func TestLongHeaderIsFolded(t *testing.T) {
	m := testMessage()
	if _, err := NewChain(mustLoad(t, "longheader")).MessageHook(context.Background(), abi.HookSMTPServerMessageReceived, m); err != nil {
		t.Fatal(err)
	}
	if want := string(rune('0' - abi.Limit)); m.Meta["rc"] != want {
		t.Fatalf("append_header of an unfoldable field returned -%s, want %d", m.Meta["rc"], abi.Limit)
	}
	data := string(m.Data)
	for _, line := range strings.SplitAfter(data, "\r\n") {
		if len(line) > 1000 {
			t.Fatalf("a line of %d octets with its CRLF: %.40q...", len(line), line)
		}
	}
	if strings.Contains(data, "X-Word") {
		t.Fatal("the refused field was added")
	}
	name := "X-Long-" + strings.Repeat("n", 69)
	msg := &msgState{Message: &Message{Data: m.Data}}
	v, ok := msg.Header(name, 0)
	if !ok || !strings.Contains(string(v), "\r\n") {
		t.Fatalf("field %q: %v, folded %v", name, ok, strings.Contains(string(v), "\r\n"))
	}
	if got := strings.ReplaceAll(string(v), "\r\n", ""); got != longValue() {
		t.Fatalf("the value unfolds to %q,\nwant %q", got, longValue())
	}
	if !strings.HasSuffix(data, "Subject: Hello\r\n\r\nbody\r\n") {
		t.Fatalf("the rest of the message changed: %q", data[len(data)-40:])
	}
}

// foldAt folds a field only when it is too long for a line, at the latest space or tab that
// fits, and never so that a line has only whitespace.
func TestFoldAt(t *testing.T) {
	long := func(n int, c string) string { return strings.Repeat(c, n) }
	for _, tc := range []struct {
		name, val string
		at        int
		ok        bool
	}{
		{"X", long(995, "a"), 0, true},                         // "X: " + 995 = 998
		{"X", long(996, "a"), 0, false},                        // 999, no space
		{"X", "a " + long(994, "b"), 1, true},                  // folds before the space
		{"X", long(990, "a") + " " + long(5, "b"), 990, true},  // the latest space that fits
		{"X", long(995, "a") + " " + long(2, "b"), 995, true},  // the first line is "X: " + 995 = 998
		{"X", long(996, "a") + " " + "b", 0, false},            // the only space is at 996: a line of 999
		{"X", long(990, "a") + "\t" + long(7, "b"), 990, true}, // a tab is whitespace too
		{"X", "a" + long(997, " "), 0, false},                  // trailing whitespace only: no line of only WSP
		{"X", "a b" + long(995, " "), 1, true},                 // folds before " b", not in the trailing run
		{long(76, "n"), long(900, "a") + " " + long(97, "b"), 900, true},
		{long(76, "n"), long(921, "a") + " " + long(76, "b"), 0, false}, // "nn…: " + 921 = 999
	} {
		at, ok := foldAt(tc.name, tc.val)
		if at != tc.at || ok != tc.ok {
			t.Errorf("foldAt(%d-byte name, %d-byte value) = %d %v, want %d %v", len(tc.name), len(tc.val), at, ok, tc.at, tc.ok)
		}
	}
}
