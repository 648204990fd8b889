// Package auth checks the credentials of SMTP AUTH (RFC 4954) against a users file
// (smtp.auth_users_file): one "user:hash" line per user, the hash a bcrypt string ($2a$, $2b$,
// $2y$) or an argon2id PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash), as htpasswd -B
// and the argon2 tool write them. Nothing else is accepted: a plain-text, MD5 or SHA-1 line is
// an error naming the file and line, never a silently unusable user.
//
// The file is parsed completely before it replaces the one in use (Store.Reload), so a bad
// edit leaves the previous users serving. Verification takes the same time whether or not the
// user exists (an unknown user is checked against a dummy hash of the same kind), runs at most
// a few at a time (argon2id may use hundreds of MiB each), at most NetworkSlots of them for one
// client network, and the failure delay per client address lives in Throttle.
package auth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"
)

// MaxUserLength is the longest user name accepted (RFC 4616 allows 255 octets of authcid).
const MaxUserLength = 255

// MaxFileSize bounds the users file: far above any real one, and it is read whole.
const MaxFileSize = 16 << 20

// Users is one parsed users file. It is immutable once parsed.
type Users struct {
	users map[string]hash
	first hash // its kind and cost make the dummy hash

	dummyOnce sync.Once
	dummy     hash
}

// Len is the number of users.
func (u *Users) Len() int { return len(u.users) }

// Load reads and parses the users file at path.
func Load(path string) (*Users, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxFileSize)
	}
	return Parse(path, b)
}

// Parse parses a users file; name is used in error messages ("users.htpasswd:3: ...").
// Blank lines and lines starting with '#' are skipped; a line may end with CRLF.
func Parse(name string, data []byte) (*Users, error) {
	u := &Users{users: map[string]hash{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), len(data)+1)
	for ln := 1; sc.Scan(); ln++ {
		line := sc.Bytes()
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		user, h, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, ln, err)
		}
		if _, dup := u.users[user]; dup {
			return nil, fmt.Errorf("%s:%d: user %q listed twice", name, ln, user)
		}
		u.users[user] = h
		if u.first == nil {
			u.first = h
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return u, nil
}

func parseLine(line []byte) (string, hash, error) {
	i := bytes.IndexByte(line, ':')
	if i < 0 {
		return "", nil, errors.New(`not "user:hash"`)
	}
	user := string(line[:i])
	if err := checkUser(user); err != nil {
		return "", nil, err
	}
	h, err := parseHash(line[i+1:])
	if err != nil {
		return "", nil, fmt.Errorf("user %q: %w", user, err)
	}
	return user, h, nil
}

// checkUser refuses names no client could send: empty, over-long, not UTF-8, or with spaces
// or control characters (NUL separates the fields of AUTH PLAIN, RFC 4616 §2).
func checkUser(user string) error {
	if user == "" {
		return errors.New("empty user name")
	}
	if len(user) > MaxUserLength {
		return fmt.Errorf("user name longer than %d octets", MaxUserLength)
	}
	if !utf8.ValidString(user) {
		return errors.New("user name is not UTF-8")
	}
	for _, r := range user {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("user name %q has a space or control character", user)
		}
	}
	return nil
}

// verifySlots bounds concurrent verifications: each is CPU-bound and an argon2id one holds its
// m KiB of memory.
var verifySlots = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))

// NetworkSlots is how many of the verify slots one client network (Network) may hold at once.
// The failure delay (Throttle) comes only after a check, so without this share a few
// connections from one address sending bad passwords kept every slot busy and every other
// user's AUTH waited behind them; now the others from that network wait for its own slot.
const NetworkSlots = 1

// netSlots holds the share of each client network that is verifying or waiting; an entry lives
// while someone uses it, so the table is bounded by the connections open.
var netSlots = struct {
	sync.Mutex
	m map[netip.Prefix]*netSlot
}{m: map[netip.Prefix]*netSlot{}}

type netSlot struct {
	sem  chan struct{}
	refs int
}

// acquire takes client's network share, then a verify slot; it fails only when ctx ends first.
func acquire(ctx context.Context, client netip.Addr) (release func(), err error) {
	k := Network(client)
	netSlots.Lock()
	ns := netSlots.m[k]
	if ns == nil {
		ns = &netSlot{sem: make(chan struct{}, NetworkSlots)}
		netSlots.m[k] = ns
	}
	ns.refs++
	netSlots.Unlock()
	drop := func() {
		netSlots.Lock()
		if ns.refs--; ns.refs == 0 {
			delete(netSlots.m, k)
		}
		netSlots.Unlock()
	}
	select {
	case ns.sem <- struct{}{}:
	case <-ctx.Done():
		drop()
		return nil, ctx.Err()
	}
	select {
	case verifySlots <- struct{}{}:
	case <-ctx.Done():
		<-ns.sem
		drop()
		return nil, ctx.Err()
	}
	return func() {
		<-verifySlots
		<-ns.sem
		drop()
	}, nil
}

// testHook, set only by tests (export_test.go), sees a verification arrive and, holding its
// slots, start: tests hold slots busy with it and know when they are. Atomic: a server's
// sessions may still be checking when a test removes it.
var testHook atomic.Pointer[func(stage, user string)]

// testHook stages.
const (
	hookArrive = "arrive"
	hookVerify = "verify"
)

// Verify reports whether password is user's, for a client at client (its network's share of
// the verify slots, NetworkSlots); err is ctx's when ctx ended before a slot was free. An
// unknown user costs the same as a known one: the password is checked against a dummy hash of
// the first user's kind and cost, so the time of the answer does not tell which users exist.
func (u *Users) Verify(ctx context.Context, client netip.Addr, user, password string) (bool, error) {
	if h := testHook.Load(); h != nil {
		(*h)(hookArrive, user)
	}
	release, err := acquire(ctx, client)
	if err != nil {
		return false, err
	}
	defer release()
	if h := testHook.Load(); h != nil {
		(*h)(hookVerify, user)
	}
	h, ok := u.users[user]
	if !ok {
		if d := u.dummyHash(); d != nil {
			d.verify([]byte(password))
		}
		return false, nil
	}
	return h.verify([]byte(password)), nil
}

// dummyHash is made once per file, not at parse time (config check and the fuzz test parse
// without verifying): making a bcrypt hash costs as much as checking one.
func (u *Users) dummyHash() hash {
	u.dummyOnce.Do(func() {
		if u.first == nil {
			return // no users: nothing to hide
		}
		var pw [18]byte
		_, _ = rand.Read(pw[:])
		u.dummy = u.first.like(pw[:])
	})
	return u.dummy
}

// Store holds the users file in use and replaces it on Reload.
type Store struct {
	path  string
	users atomic.Pointer[Users]
}

// Open loads the users file at path.
func Open(path string) (*Store, error) {
	u, err := Load(path)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path}
	s.store(u)
	return s, nil
}

// Path is the users file's path.
func (s *Store) Path() string { return s.path }

// Users is the users file in use.
func (s *Store) Users() *Users { return s.users.Load() }

// Reload re-reads the file; on error the users in use stay.
func (s *Store) Reload() (*Users, error) {
	u, err := Load(s.path)
	if err != nil {
		return nil, err
	}
	s.store(u)
	return u, nil
}

// store puts u in use and makes its dummy hash in the background, so that not even the first
// unknown user pays for making it (the first check waits for it if it is not ready).
func (s *Store) store(u *Users) {
	go u.dummyHash()
	s.users.Store(u)
}

// Authenticate implements the SMTP server's authenticator for a client at client (see
// Users.Verify): identity (the SASL authorization identity) must be empty or the user itself,
// since nobody may act for another. err is ctx's when ctx ended before the check could run.
func (s *Store) Authenticate(ctx context.Context, client netip.Addr, identity, user, password string) (bool, error) {
	ok, err := s.users.Load().Verify(ctx, client, user, password)
	return ok && (identity == "" || identity == user), err
}
