package spool

import (
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/wasmta/wasmta/host/message"
)

// decodeSched reads the fields of message.Sched from a message record. At start-up it runs once
// per spooled message, so it reads the record as json.Marshal writes it (compact, fields in
// Message's order, no escapes in the fields it keeps) without encoding/json's reflection, which
// took about 40% of a start-up scan's CPU. Whatever it does not recognise (white space, escapes,
// a field of another type, invalid JSON) it hands to json.Unmarshal, so it never accepts a
// record encoding/json would refuse nor reads one differently (FuzzDecodeSched checks both).
func decodeSched(v []byte) (message.Sched, error) {
	if s, ok := fastSched(v); ok {
		return s, nil
	}
	var s message.Sched
	err := json.Unmarshal(v, &s)
	return s, err
}

// errSlow makes fastSched give the record to json.Unmarshal.
var errSlow = errors.New("not the compact form")

// fastSched parses v as a compact JSON object; ok is false when v is not one it can read
// exactly as json.Unmarshal would.
func fastSched(v []byte) (s message.Sched, ok bool) {
	p := schedParser{b: v}
	if err := p.object(&s); err != nil || p.i != len(p.b) {
		return message.Sched{}, false
	}
	return s, true
}

type schedParser struct {
	b     []byte
	i     int
	depth int // of nested objects and arrays; deep nesting goes to json.Unmarshal
}

const maxDepth = 64

func (p *schedParser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *schedParser) expect(c byte) error {
	if p.peek() != c {
		return errSlow
	}
	p.i++
	return nil
}

// object reads the top-level object, keeping the Sched fields (s non-nil) or skipping all.
func (p *schedParser) object(s *message.Sched) error {
	if err := p.expect('{'); err != nil {
		return err
	}
	if p.peek() == '}' {
		p.i++
		return nil
	}
	for {
		key, escaped, err := p.str()
		if err != nil {
			return err
		}
		if err := p.expect(':'); err != nil {
			return err
		}
		if s != nil {
			if escaped || !ascii(key) || foldsToField(key) {
				// encoding/json matches keys after unescaping and case-insensitively (with
				// Unicode folding: "ſ" matches "s").
				return errSlow
			}
			if err := p.field(s, key); err != nil {
				return err
			}
		} else if err := p.skip(); err != nil {
			return err
		}
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return errSlow
		}
	}
}

// foldsToField reports whether key is one of Sched's JSON names in another case.
func foldsToField(key []byte) bool {
	for _, f := range [...]string{"id", "queue", "created", "due", "attempts", "body_id"} {
		if len(key) == len(f) && string(key) != f && equalFoldASCII(key, f) {
			return true
		}
	}
	return false
}

func ascii(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func equalFoldASCII(b []byte, s string) bool {
	for i := range b {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

func (p *schedParser) field(s *message.Sched, key []byte) error {
	switch string(key) {
	case "id", "queue", "body_id":
		if p.peek() != '"' {
			return errSlow // null or another type: json.Unmarshal decides
		}
		v, escaped, err := p.str()
		if err != nil || escaped || !utf8.Valid(v) {
			return errSlow // json.Unmarshal replaces invalid UTF-8
		}
		switch string(key) {
		case "id":
			s.ID = message.ID(v)
		case "queue":
			s.Queue = string(v)
		default:
			s.BodyID = message.ID(v)
		}
	case "created", "due":
		start := p.i
		if p.peek() != '"' {
			return errSlow
		}
		if _, escaped, err := p.str(); err != nil || escaped {
			return errSlow
		}
		var t time.Time
		if err := t.UnmarshalJSON(p.b[start:p.i]); err != nil {
			return errSlow
		}
		if string(key) == "created" {
			s.Created = t
		} else {
			s.Due = t
		}
	case "attempts":
		n, err := p.int()
		if err != nil {
			return err
		}
		s.Attempts = n
	default:
		return p.skip()
	}
	return nil
}

// int reads a JSON integer that fits an int; anything else (a fraction, an exponent, a value
// out of range) is left to json.Unmarshal.
func (p *schedParser) int() (int, error) {
	neg := p.peek() == '-'
	if neg {
		p.i++
	}
	start := p.i
	n := 0
	for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		if p.i-start >= 18 {
			return 0, errSlow
		}
		n = n*10 + int(p.b[p.i]-'0')
		p.i++
	}
	if p.i == start || (p.b[start] == '0' && p.i-start > 1) {
		return 0, errSlow
	}
	if c := p.peek(); c == '.' || c == 'e' || c == 'E' {
		return 0, errSlow
	}
	if neg {
		n = -n
	}
	return n, nil
}

// str reads a JSON string and returns its raw contents (between the quotes) and whether it
// holds escapes (then the contents are not its value).
func (p *schedParser) str() (raw []byte, escaped bool, err error) {
	if err := p.expect('"'); err != nil {
		return nil, false, err
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			raw = p.b[start:p.i]
			p.i++
			return raw, escaped, nil
		case c == '\\':
			escaped = true
			if p.i+1 >= len(p.b) {
				return nil, false, errSlow
			}
			switch p.b[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				if p.i+6 > len(p.b) {
					return nil, false, errSlow
				}
				for _, h := range p.b[p.i+2 : p.i+6] {
					if !isHex(h) {
						return nil, false, errSlow
					}
				}
				p.i += 6
			default:
				return nil, false, errSlow
			}
		case c < 0x20:
			return nil, false, errSlow
		default:
			p.i++
		}
	}
	return nil, false, errSlow
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// skip reads past one JSON value of any type, checking its syntax.
func (p *schedParser) skip() error {
	if c := p.peek(); c == '{' || c == '[' {
		if p.depth++; p.depth > maxDepth {
			return errSlow
		}
		defer func() { p.depth-- }()
	}
	switch c := p.peek(); {
	case c == '"':
		_, _, err := p.str()
		return err
	case c == '{':
		return p.object(nil)
	case c == '[':
		p.i++
		if p.peek() == ']' {
			p.i++
			return nil
		}
		for {
			if err := p.skip(); err != nil {
				return err
			}
			switch p.peek() {
			case ',':
				p.i++
			case ']':
				p.i++
				return nil
			default:
				return errSlow
			}
		}
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(p.b)-p.i >= len(lit) && string(p.b[p.i:p.i+len(lit)]) == lit {
				p.i += len(lit)
				return nil
			}
		}
		return errSlow
	}
}

// number reads past a JSON number (RFC 8259 §6).
func (p *schedParser) number() error {
	if p.peek() == '-' {
		p.i++
	}
	digits := func() int {
		start := p.i
		for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
			p.i++
		}
		return p.i - start
	}
	first := p.peek()
	n := digits()
	if n == 0 || (first == '0' && n > 1) {
		return errSlow
	}
	if p.peek() == '.' {
		p.i++
		if digits() == 0 {
			return errSlow
		}
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.i++
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		if digits() == 0 {
			return errSlow
		}
	}
	return nil
}
