package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A plugin that adds a field whose "Name: value" is longer than 998 bytes
// (host/plugin/testdata/longheader.wat: a 76-byte name, a 998-byte value of words) gets it
// folded: the message the next hop receives has no line over RFC 5321's 1000 octets with its
// CRLF (§4.5.3.1.6), and the field unfolds (RFC 5322 §2.2.3) to the value the plugin set. The
// field it adds with no space to fold at (998 "b"s) is refused and not delivered.
func TestPluginLongHeaderIsFoldedAtTheSink(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zone, []string{"127.0.0.4"}, pluginConfig(fixture(t, "longheader")))
	e.send("a@sender.test", "x@implicit.test", "folded")
	got := e.sinks["127.0.0.4"].WaitCount(t, 1, 30*time.Second)[0].Data
	for _, line := range bytes.SplitAfter(got, []byte("\r\n")) {
		if len(line) > 1000 {
			t.Fatalf("a line of %d octets with its CRLF reached the sink: %.60q...", len(line), line)
		}
	}
	if bytes.Contains(got, []byte("X-Word")) || bytes.Contains(got, []byte(strings.Repeat("b", 100))) {
		t.Fatal("the field with nowhere to fold reached the sink")
	}
	name := "X-Long-" + strings.Repeat("n", 69)
	hdr, _, _ := bytes.Cut(got, []byte("\r\n\r\n"))
	unfolded := strings.ReplaceAll(string(hdr), "\r\n ", " ")
	var value string
	for _, line := range strings.Split(unfolded, "\r\n") {
		if v, ok := strings.CutPrefix(line, name+": "); ok {
			value = v
		}
	}
	var want strings.Builder
	for i := range 998 {
		if i%10 == 9 {
			want.WriteByte(' ')
		} else {
			want.WriteByte(byte('a' + i/10%26))
		}
	}
	if value != want.String() {
		t.Fatalf("the field unfolds to %q,\nwant %q\nheader:\n%s", value, want.String(), hdr)
	}
	if !strings.Contains(unfolded, "Subject: folded") {
		t.Fatalf("the client's header is not there:\n%s", hdr)
	}
}
