package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"
)

// `wasmta inject` against a running server with a token: a message file reaches the sink as
// written; builder flags make a MIME message with the attachment; a failed recipient is an exit
// status of 1 with the server's reason; a wrong token is refused.
func TestInjectCommand(t *testing.T) {
	t.Parallel()
	e := newHTTPEnv(t, []string{"127.0.0.4"}, "token = \"s3cret\"\n", "")
	dir := t.TempDir()
	eml := filepath.Join(dir, "m.eml")
	if err := os.WriteFile(eml, []byte("Subject: from a file\r\nFrom: a@sender.test\r\n\r\nfile body\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pdf := filepath.Join(dir, "report.pdf")
	if err := os.WriteFile(pdf, []byte("%PDF-1.4 not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	api := []string{"--api", e.url, "--token", "s3cret"}

	out, err := runBin(dir, append([]string{"inject", eml, "--from", "a@sender.test", "--to", "file@implicit.test"}, api...)...)
	if err != nil || !strings.Contains(out, "1 accepted, 0 failed") {
		t.Fatalf("inject file: %v\n%s", err, out)
	}
	out, err = runBin(dir, append([]string{"inject", "--from", "a@sender.test", "--to", "built@implicit.test",
		"--subject", "Report for {{ 'you' | upper }}", "--text", "see attached", "--attach", pdf, "--header", "X-Campaign: q4"}, api...)...)
	if err != nil || !strings.Contains(out, "1 accepted, 0 failed") {
		t.Fatalf("inject builder: %v\n%s", err, out)
	}
	got := e.sinks["127.0.0.4"].WaitCount(t, 2, 10*time.Second)
	byRcpt := map[string][]byte{}
	for _, m := range got {
		byRcpt[m.To[0]] = m.Data
	}
	if !bytes.Contains(byRcpt["file@implicit.test"], []byte("Subject: from a file\r\n")) || !bytes.Contains(byRcpt["file@implicit.test"], []byte("\r\n\r\nfile body\r\n")) {
		t.Fatalf("file message arrived as:\n%s", byRcpt["file@implicit.test"])
	}
	mr, err := gomail.CreateReader(bytes.NewReader(byRcpt["built@implicit.test"]))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := mr.Header.Subject(); s != "Report for YOU" || mr.Header.Get("X-Campaign") != "q4" {
		t.Fatalf("built message header: subject %q, X-Campaign %q", s, mr.Header.Get("X-Campaign"))
	}
	var attached string
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		if h, ok := p.Header.(*gomail.AttachmentHeader); ok {
			name, _ := h.Filename()
			b := new(bytes.Buffer)
			b.ReadFrom(p.Body)
			attached = name + ":" + b.String()
		}
	}
	if attached != "report.pdf:%PDF-1.4 not really" {
		t.Fatalf("attachment %q", attached)
	}

	// A request the server refuses: exit status 1 with its reason, naming the field.
	out, err = runBin(dir, append([]string{"inject", eml, "--from", "a@sender.test", "--to", "not an address"}, api...)...)
	if err == nil || !strings.Contains(out, "400") || !strings.Contains(out, "recipients[0].email") {
		t.Fatalf("a bad recipient: %v\n%s", err, out)
	}
	out, err = runBin(dir, "inject", eml, "--from", "a@sender.test", "--to", "file@implicit.test", "--api", e.url, "--token", "wrong")
	if err == nil || !strings.Contains(out, "401") {
		t.Fatalf("wrong token: %v\n%s", err, out)
	}
}
