package message

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseEnhanced(t *testing.T) {
	for _, tc := range []struct {
		in      string
		c, s, d int
		ok      bool
	}{
		{"2.0.0", 2, 0, 0, true},
		{"5.1.10", 5, 1, 10, true},
		{"4.999.999", 4, 999, 999, true},
		{"5.01.001", 5, 1, 1, true},
		{"", 0, 0, 0, false},
		{"3.0.0", 0, 0, 0, false}, // RFC 3463: class is 2, 4 or 5
		{"1.0.0", 0, 0, 0, false},
		{"5.1", 0, 0, 0, false},
		{"5.1.1.1", 0, 0, 0, false},
		{"5..1", 0, 0, 0, false},
		{"5.1.", 0, 0, 0, false},
		{"5.1000.1", 0, 0, 0, false},
		{"5.1.1000", 0, 0, 0, false},
		{"5.-1.1", 0, 0, 0, false},
		{"5.+1.1", 0, 0, 0, false},
		{"5.1.1 ", 0, 0, 0, false},
		{"55.1.1", 0, 0, 0, false},
		{"5.a.1", 0, 0, 0, false},
		{"５.1.1", 0, 0, 0, false},
	} {
		c, s, d, ok := ParseEnhanced(tc.in)
		if c != tc.c || s != tc.s || d != tc.d || ok != tc.ok {
			t.Errorf("ParseEnhanced(%q) = %d %d %d %v, want %d %d %d %v", tc.in, c, s, d, ok, tc.c, tc.s, tc.d, tc.ok)
		}
		if _, _, _, ok2 := (Reply{Enhanced: tc.in}).EnhancedParts(); ok2 != tc.ok {
			t.Errorf("EnhancedParts(%q) disagrees with ParseEnhanced", tc.in)
		}
	}
}

func TestSplitEnhanced(t *testing.T) {
	for _, tc := range []struct {
		code      int
		text      string
		enh, rest string
		ok        bool
	}{
		{250, "2.0.0 Ok: queued", "2.0.0", "Ok: queued", true},
		{550, "5.1.1 no such user", "5.1.1", "no such user", true},
		{550, "5.1.1", "5.1.1", "", true},
		{550, "4.1.1 class mismatch", "", "4.1.1 class mismatch", false},
		{450, "mailbox busy", "", "mailbox busy", false},
		{550, "5.1.1x no", "", "5.1.1x no", false},
		{421, "", "", "", false},
	} {
		enh, rest, ok := SplitEnhanced(tc.code, tc.text)
		if enh != tc.enh || rest != tc.rest || ok != tc.ok {
			t.Errorf("SplitEnhanced(%d, %q) = %q %q %v, want %q %q %v", tc.code, tc.text, enh, rest, ok, tc.enh, tc.rest, tc.ok)
		}
	}
}

// FuzzParseEnhanced checks that every accepted code round-trips through its numbers and that
// SplitEnhanced never loses text.
func FuzzParseEnhanced(f *testing.F) {
	for _, s := range []string{"2.0.0", "5.1.10", "4.999.999", "5.1", "5..1", "3.0.0", "5.1.1 text"} {
		f.Add(s, 550)
	}
	f.Fuzz(func(t *testing.T, s string, code int) {
		c, sub, d, ok := ParseEnhanced(s)
		if ok {
			if c != 2 && c != 4 && c != 5 || sub > 999 || d > 999 || sub < 0 || d < 0 {
				t.Fatalf("%q accepted as %d.%d.%d", s, c, sub, d)
			}
			// Leading zeros are allowed, so compare numbers, not strings.
			p := strings.Split(s, ".")
			for i, want := range []int{c, sub, d} {
				if n, err := strconv.Atoi(p[i]); err != nil || n != want {
					t.Fatalf("%q part %d: %d", s, i, want)
				}
			}
		}
		enh, rest, ok := SplitEnhanced(code, s)
		if ok {
			if enh+" "+rest != s && enh != s {
				t.Fatalf("SplitEnhanced(%q) = %q + %q", s, enh, rest)
			}
		} else if rest != s || enh != "" {
			t.Fatalf("SplitEnhanced(%q) failed but changed text: %q %q", s, enh, rest)
		}
	})
}
