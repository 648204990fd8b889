package auth

import (
	"strings"
	"testing"
)

// FuzzParse: any bytes either parse or give an error naming the file and line; a parsed file
// holds only names a client can send, and parsing never panics or asks for a cost above the
// bounds (a hash that got through is checked against those bounds here, without running it).
func FuzzParse(f *testing.F) {
	for _, s := range []string{aliceLine, bobLine, carolLine, daveLine, "# c\n\n" + aliceLine + "\r\n" + carolLine, "a:b", ":", "\x00:$2y$"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := Parse("f", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f:") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		for name, h := range u.users {
			if checkUser(name) != nil {
				t.Fatalf("accepted user name %q", name)
			}
			switch h := h.(type) {
			case bcryptHash:
				if len(h) != 60 {
					t.Fatalf("bcrypt hash of %d octets", len(h))
				}
			case *argon2Hash:
				if h.memory > MaxArgon2Memory || h.time > MaxArgon2Time || h.threads > MaxArgon2Threads || h.memory < 8*uint32(h.threads) {
					t.Fatalf("argon2id parameters out of bounds: %+v", h)
				}
			default:
				t.Fatalf("unknown hash type %T", h)
			}
		}
	})
}
