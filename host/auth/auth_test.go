package auth

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Hashes made by the reference tools, not by this package: htpasswd -nbB (Apache, $2y$) and
// the argon2 reference CLI (echo -n PW | argon2 SALT -id ... -e).
const (
	aliceLine = "alice:$2y$05$EhE0EUIhfL0vb7XQNzZg7e2vfkfz6TsR5F6O892yKKMEcCnwK2M8e"                                    // alice-pw
	bobLine   = "bob:$2y$04$vRzmCe9KPBN8V2tm0sZ8s.O39HoN80PSySmh0HqzMGuR3cQ12evOe"                                      // "b0b pw"
	carolLine = "carol:$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0$ydTGOV0ICALurlfhJyQhLudVf+aQuB5avPu5fctDXng"      // carol-pw
	daveLine  = "dave:$argon2id$v=19$m=4096,t=1,p=2$ZGF2ZXNhbHRkYXZlc2FsdA$WbO8LfSDDerRnlis+/S5q/eBfCBZ4JI0rhBU4bGGEPA" // dave-pw
)

func TestParseAndVerify(t *testing.T) {
	file := "# relay users\n" + aliceLine + "\r\n\n" + bobLine + "\n" + carolLine + "\n" + daveLine // no final newline
	u, err := Parse("users", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if u.Len() != 4 {
		t.Fatalf("%d users, want 4", u.Len())
	}
	for _, c := range []struct {
		user, pw string
		ok       bool
	}{
		{"alice", "alice-pw", true},
		{"alice", "alice-pw ", false},
		{"alice", "", false},
		{"bob", "b0b pw", true},
		{"carol", "carol-pw", true},
		{"carol", "carol-pW", false},
		{"dave", "dave-pw", true},
		{"dave", "carol-pw", false},
		{"Alice", "alice-pw", false}, // names are case-sensitive, as in htpasswd
		{"eve", "alice-pw", false},
	} {
		if got := verify(u, c.user, c.pw); got != c.ok {
			t.Errorf("Verify(%q, %q) = %v, want %v", c.user, c.pw, got, c.ok)
		}
	}
	// The $2a$ and $2b$ spellings of the same hash verify too.
	for _, v := range []string{"$2a$", "$2b$"} {
		u, err := Parse("users", []byte("alice:"+v+strings.SplitN(aliceLine, "$", 3)[2]))
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if !verify(u, "alice", "alice-pw") {
			t.Errorf("%s hash does not verify", v)
		}
	}
}

func TestParseErrors(t *testing.T) {
	bcryptTail := strings.TrimPrefix(aliceLine, "alice:$2y$05$")
	for _, c := range []struct{ name, line, want string }{
		{"no colon", "alice", `users:2: not "user:hash"`},
		{"empty user", ":" + strings.TrimPrefix(aliceLine, "alice:"), "users:2: empty user name"},
		{"space in user", "al ice:" + strings.TrimPrefix(aliceLine, "alice:"), "space or control"},
		{"plain text", "alice:secret", "unsupported hash"},
		{"md5", "alice:$apr1$abc$def", "unsupported hash"},
		{"sha1", "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "unsupported hash"},
		{"argon2i", "alice:$argon2i$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0$ydTGOV0ICALurlfhJyQhLudVf+aQuB5avPu5fctDXng", "only argon2id"},
		{"bcrypt short", "alice:$2y$05$" + bcryptTail[:52], "53 characters"},
		{"bcrypt trailing space", aliceLine + " ", "53 characters"},
		{"bcrypt cost 3", "alice:$2y$03$" + bcryptTail, "cost 3"},
		{"bcrypt cost 31", "alice:$2y$31$" + bcryptTail, "cost 31"},
		{"bcrypt alphabet", "alice:$2y$05$" + bcryptTail[:52] + "+", "alphabet"},
		{"bcrypt 2x", "alice:$2x$05$" + bcryptTail, "unsupported hash"},
		{"argon2 v=16", strings.Replace(carolLine, "v=19", "v=16", 1), "only v=19"},
		{"argon2 order", strings.Replace(carolLine, "m=1024,t=2", "t=2,m=1024", 1), "want m=N"},
		{"argon2 leading zero", strings.Replace(carolLine, "t=2", "t=02", 1), "not a number"},
		{"argon2 sign", strings.Replace(carolLine, "t=2", "t=+2", 1), "not a number"},
		{"argon2 huge m", strings.Replace(carolLine, "m=1024", "m=4194304", 1), "m=4194304: must be from"},
		{"argon2 m below 8p", strings.Replace(carolLine, "m=1024,t=2,p=1", "m=8,t=2,p=4", 1), "at least 8*p"},
		{"argon2 extra param", strings.Replace(carolLine, "p=1", "p=1,keyid=x", 1), `"m=M,t=T,p=P"`},
		{"argon2 padded salt", strings.Replace(carolLine, "c2FsdHNhbHRzYWx0", "c2FsdHNhbHRzYWx0==", 1), "salt"},
		{"argon2 short salt", strings.Replace(carolLine, "c2FsdHNhbHRzYWx0", "c2FsdA", 1), "salt"},
		{"argon2 short key", strings.Replace(carolLine, "ydTGOV0ICALurlfhJyQhLudVf+aQuB5avPu5fctDXng", "ydTGOV0ICA", 1), "argon2id hash: want"},
		{"argon2 missing field", strings.TrimSuffix(carolLine, "$ydTGOV0ICALurlfhJyQhLudVf+aQuB5avPu5fctDXng"), "is not"},
		{"duplicate", aliceLine, `user "alice" listed twice`},
	} {
		t.Run(c.name, func(t *testing.T) {
			first := "# first line is a comment\n"
			if c.name == "duplicate" {
				first = aliceLine + "\n"
			}
			_, err := Parse("users", []byte(first+c.line+"\n"+bobLine+"\n"))
			if err == nil {
				t.Fatalf("accepted %q", c.line)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "users:2: ") {
				t.Fatalf("error %q: want users:2: and %q", err, c.want)
			}
		})
	}
}

func TestStoreReloadKeepsOldOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.htpasswd")
	if err := os.WriteFile(path, []byte(aliceLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if !authn(s, "", "alice", "alice-pw") || authn(s, "bob", "alice", "alice-pw") {
		t.Fatal("alice: wrong answer before reload")
	}
	os.WriteFile(path, []byte(bobLine+"\nbroken line\n"), 0o600)
	if _, err := s.Reload(); err == nil || !strings.Contains(err.Error(), path+":2:") {
		t.Fatalf("reload of a bad file: %v, want an error naming %s:2", err, path)
	}
	if !authn(s, "", "alice", "alice-pw") {
		t.Fatal("a refused reload dropped the users in use")
	}
	os.WriteFile(path, []byte(bobLine+"\n"), 0o600)
	if _, err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if authn(s, "", "alice", "alice-pw") || !authn(s, "", "bob", "b0b pw") {
		t.Fatal("reload did not replace the users")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing file opened")
	}
}

func TestThrottleDelays(t *testing.T) {
	now := time.Unix(1e9, 0)
	th := NewThrottle()
	th.Now = func() time.Time { return now }
	a := netip.MustParseAddr("192.0.2.1")
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 16 * time.Second}
	for i, w := range want {
		if got := th.Fail(a); got != w {
			t.Fatalf("failure %d: delay %v, want %v", i+1, got, w)
		}
	}
	if got := th.Fail(netip.MustParseAddr("192.0.2.2")); got != 0 {
		t.Fatalf("another address pays for the first: %v", got)
	}
	// One IPv6 /64 is one network.
	th.Fail(netip.MustParseAddr("2001:db8::1"))
	if got := th.Fail(netip.MustParseAddr("2001:db8::2")); got != time.Second {
		t.Fatalf("second failure in the same /64: %v, want 1s", got)
	}
	now = now.Add(FailureWindow + time.Second)
	if got := th.Fail(a); got != 0 {
		t.Fatalf("after the window: %v, want 0", got)
	}
}

func TestThrottleBounded(t *testing.T) {
	th := NewThrottle()
	for i := range MaxTracked + 10 {
		th.Fail(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	if n := len(th.m); n > MaxTracked {
		t.Fatalf("%d entries, cap %d", n, MaxTracked)
	}
}

var testClient = netip.MustParseAddr("192.0.2.1")

func verify(u *Users, user, pw string) bool {
	ok, err := u.Verify(context.Background(), testClient, user, pw)
	if err != nil {
		panic(err) // a background context does not end
	}
	return ok
}

func authn(s *Store, identity, user, pw string) bool {
	ok, err := s.Authenticate(context.Background(), testClient, identity, user, pw)
	if err != nil {
		panic(err)
	}
	return ok
}

// A check that waits for its network's share gives up when its context ends (the server shuts
// down) and leaves nothing held: the network's next check runs.
func TestVerifyWaitEndsWithContext(t *testing.T) {
	u, err := Parse("users", []byte(bobLine+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	release, err := acquire(context.Background(), testClient) // the network's one share, held
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := u.Verify(ctx, testClient, "bob", "b0b pw")
		done <- err
	}()
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("waiting check: %v, want context.Canceled", err)
	}
	release()
	if !verify(u, "bob", "b0b pw") {
		t.Fatal("the network's next check did not run")
	}
	netSlots.Lock()
	n := len(netSlots.m)
	netSlots.Unlock()
	if n != 0 {
		t.Fatalf("%d networks still tracked after every check ended", n)
	}
}
