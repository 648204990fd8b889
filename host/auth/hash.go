package auth

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Bounds on the cost a hash may ask for. Every AUTH pays it, so a typo (bcrypt cost 31, argon2id
// m=4194304) must not turn each login into minutes of CPU or gigabytes of memory.
const (
	MinBcryptCost = bcrypt.MinCost // 4
	MaxBcryptCost = 16             // ~5 s per check on a 2020s core; 10-12 is usual

	MaxArgon2Memory  = 256 << 10 // KiB (256 MiB); RFC 9106's second choice uses 64 MiB
	MaxArgon2Time    = 16
	MaxArgon2Threads = 16
	MinArgon2Salt    = 8 // octets (PHC string format's minimum; RFC 9106 recommends 16)
	MaxArgon2Salt    = 64
	MinArgon2Key     = 16
	MaxArgon2Key     = 64
)

// hash is one stored password hash.
type hash interface {
	verify(password []byte) bool
	// like makes a hash of password with the same kind and cost (the dummy for unknown users).
	like(password []byte) hash
}

var errScheme = errors.New("unsupported hash: want bcrypt ($2a$, $2b$, $2y$) or $argon2id$")

func parseHash(s []byte) (hash, error) {
	switch {
	case bytes.HasPrefix(s, []byte("$2a$")), bytes.HasPrefix(s, []byte("$2b$")), bytes.HasPrefix(s, []byte("$2y$")):
		return parseBcrypt(s)
	case bytes.HasPrefix(s, []byte("$argon2id$")):
		return parseArgon2id(s)
	case bytes.HasPrefix(s, []byte("$argon2i$")), bytes.HasPrefix(s, []byte("$argon2d$")):
		return nil, errors.New("only argon2id is accepted among the argon2 variants (RFC 9106 §4)")
	}
	return nil, errScheme
}

// bcryptHash is "$2b$10$" + 22 characters of salt + 31 of hash, in bcrypt's own base64.
type bcryptHash []byte

const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func parseBcrypt(s []byte) (hash, error) {
	if len(s) != 60 || s[6] != '$' || !isDigit(s[4]) || !isDigit(s[5]) {
		return nil, errors.New(`bcrypt hash is not "$2b$NN$" and 53 characters`)
	}
	for _, c := range s[7:] {
		if bytes.IndexByte([]byte(bcryptAlphabet), c) < 0 {
			return nil, fmt.Errorf("bcrypt hash has %q, not in bcrypt's base64 alphabet", c)
		}
	}
	cost := int(s[4]-'0')*10 + int(s[5]-'0')
	if cost < MinBcryptCost || cost > MaxBcryptCost {
		return nil, fmt.Errorf("bcrypt cost %d: must be from %d to %d", cost, MinBcryptCost, MaxBcryptCost)
	}
	if _, err := bcrypt.Cost(s); err != nil {
		return nil, fmt.Errorf("bcrypt hash: %w", err)
	}
	return bcryptHash(bytes.Clone(s)), nil
}

func (h bcryptHash) verify(password []byte) bool {
	return bcrypt.CompareHashAndPassword(h, password) == nil
}

func (h bcryptHash) like(password []byte) hash {
	cost, _ := bcrypt.Cost(h)
	d, err := bcrypt.GenerateFromPassword(password, cost)
	if err != nil {
		return nil
	}
	return bcryptHash(d)
}

// argon2Hash is a parsed PHC string: $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>,
// salt and key in unpadded standard base64.
type argon2Hash struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

var b64 = base64.RawStdEncoding.Strict()

func parseArgon2id(s []byte) (hash, error) {
	parts := bytes.Split(s, []byte("$"))
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || len(parts[0]) != 0 {
		return nil, errors.New(`argon2id hash is not "$argon2id$v=19$m=M,t=T,p=P$salt$hash"`)
	}
	if string(parts[2]) != "v=19" {
		return nil, fmt.Errorf("argon2id version %q: only v=19 (0x13, RFC 9106)", parts[2])
	}
	params := bytes.Split(parts[3], []byte(","))
	if len(params) != 3 {
		return nil, errors.New(`argon2id parameters are not "m=M,t=T,p=P"`)
	}
	m, err := param(params[0], "m", 1, MaxArgon2Memory)
	if err != nil {
		return nil, err
	}
	t, err := param(params[1], "t", 1, MaxArgon2Time)
	if err != nil {
		return nil, err
	}
	p, err := param(params[2], "p", 1, MaxArgon2Threads)
	if err != nil {
		return nil, err
	}
	if m < 8*p {
		return nil, fmt.Errorf("argon2id m=%d: at least 8*p (%d) KiB (RFC 9106 §3.1)", m, 8*p)
	}
	salt, err := b64.DecodeString(string(parts[4]))
	if err != nil || len(salt) < MinArgon2Salt || len(salt) > MaxArgon2Salt {
		return nil, fmt.Errorf("argon2id salt: want %d to %d octets in unpadded base64", MinArgon2Salt, MaxArgon2Salt)
	}
	key, err := b64.DecodeString(string(parts[5]))
	if err != nil || len(key) < MinArgon2Key || len(key) > MaxArgon2Key {
		return nil, fmt.Errorf("argon2id hash: want %d to %d octets in unpadded base64", MinArgon2Key, MaxArgon2Key)
	}
	return &argon2Hash{memory: uint32(m), time: uint32(t), threads: uint8(p), salt: salt, key: key}, nil
}

// param parses "name=N", N a decimal without sign or leading zero, within [lo, hi].
func param(b []byte, name string, lo, hi int) (int, error) {
	v, ok := bytes.CutPrefix(b, []byte(name+"="))
	if !ok {
		return 0, fmt.Errorf("argon2id parameter %q: want %s=N", b, name)
	}
	if len(v) == 0 || len(v) > 9 || v[0] == '0' {
		return 0, fmt.Errorf("argon2id %s=%q: not a number from %d to %d", name, v, lo, hi)
	}
	for _, c := range v {
		if !isDigit(c) {
			return 0, fmt.Errorf("argon2id %s=%q: not a number from %d to %d", name, v, lo, hi)
		}
	}
	n, _ := strconv.Atoi(string(v))
	if n < lo || n > hi {
		return 0, fmt.Errorf("argon2id %s=%d: must be from %d to %d", name, n, lo, hi)
	}
	return n, nil
}

func (h *argon2Hash) verify(password []byte) bool {
	got := argon2.IDKey(password, h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(got, h.key) == 1
}

func (h *argon2Hash) like(password []byte) hash {
	d := *h
	d.key = argon2.IDKey(password, h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return &d
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
