package route

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/wasmta/wasmta/host/message"
)

// Target is a destination as written in a routing domain, a queue domain or an mx_list entry
// (design.md §3): a DNS name or an IP literal, with an optional port.
type Target struct {
	Name string     // DNS name, lower-cased, no port, no trailing dot, A-labels only; "" for a literal
	IP   netip.Addr // valid for a literal
	Port uint16     // 0 = use the default port
}

// IsLiteral reports whether t is an IP literal, which skips DNS entirely.
func (t Target) IsLiteral() bool { return t.IP.IsValid() }

// String writes t in the form ParseTarget reads: "name", "name:2525", "[10.0.0.1]",
// "[10.0.0.1]:2525" or "[IPv6:::1]". An IPv6 literal with a port (which ParseTarget never
// returns) is written "[IPv6:::1]:2525" so that logs do not lose the port.
func (t Target) String() string {
	var s string
	switch {
	case t.IP.Is4():
		s = "[" + t.IP.String() + "]"
	case t.IP.IsValid():
		s = "[IPv6:" + t.IP.String() + "]"
	default:
		s = t.Name
	}
	if t.Port != 0 {
		s += ":" + strconv.Itoa(int(t.Port))
	}
	return s
}

// targetErr is the permanent error for a destination that cannot be understood: a
// configuration error at plugin time, a bounce at delivery time (design.md §3). 5.1.2 is "bad
// destination system address" (RFC 3463).
func targetErr(format string, args ...any) *message.Error {
	return message.Errorf(550, "5.1.2", format, args...)
}

// ParseTarget reads a destination (design.md §3):
//
//   - "name" or "name:port": a DNS name, lower-cased; a trailing dot is dropped; a non-ASCII
//     label (an SMTPUTF8 recipient domain, RFC 6531) is converted to its A-label (RFC 3492).
//   - "[10.0.0.1]" or "[10.0.0.1]:2525": an IPv4 literal (RFC 5321 §4.1.3). KumoMTA's
//     "[10.0.0.1:2525]" is accepted too.
//   - "[IPv6:::1]" (tag case-insensitive, RFC 5321 §4.1.3), and the non-conforming "[::1]" that
//     operators write in routing config. An IPv6 literal cannot carry a port: design.md §3 keeps
//     KumoMTA's rule so that configs mean the same on both.
//   - a bare IP ("10.0.0.1", "10.0.0.1:2525", "::1"): not RFC 5321 syntax, but KumoMTA takes it
//     in mx_list, and DNS could never resolve it since no top-level domain is numeric.
//
// Errors are permanent *message.Error values (550 5.1.2) whose text says what is wrong.
func ParseTarget(s string) (Target, error) {
	if s == "" {
		return Target{}, targetErr("invalid destination: empty")
	}
	if s[0] == '[' {
		return parseLiteral(s)
	}
	// Only what could be an address is parsed as one: a host name (every message routed by
	// name) would make netip build an error for each of the two tries.
	colon := strings.IndexByte(s, ':') >= 0
	if colon || onlyDigitsAndDots(s) {
		if a, err := netip.ParseAddr(s); err == nil {
			if a.Zone() != "" {
				return Target{}, targetErr("invalid destination %s: an IPv6 zone cannot be delivered to", show(s))
			}
			return Target{IP: a}, nil
		}
	}
	if colon {
		if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Is4() {
			if ap.Port() == 0 {
				return Target{}, targetErr("invalid destination %s: port 0", show(s))
			}
			return Target{IP: ap.Addr(), Port: ap.Port()}, nil
		}
	}
	name, port := s, uint16(0)
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		p, ok := parsePort(s[i+1:])
		if !ok {
			return Target{}, targetErr("invalid destination %s: bad port (want 1-65535)", show(s))
		}
		name, port = s[:i], p
	}
	n, reason := normalizeName(name)
	if reason != "" {
		return Target{}, targetErr("invalid destination %s: %s", show(s), reason)
	}
	return Target{Name: n, Port: port}, nil
}

// onlyDigitsAndDots reports whether s could be a dotted IPv4 address (the only form without a
// colon that netip.ParseAddr accepts).
func onlyDigitsAndDots(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// parseLiteral reads a destination that starts with '['.
func parseLiteral(s string) (Target, error) {
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return Target{}, targetErr("invalid domain literal %s: missing ']'", show(s))
	}
	inner, rest := s[1:end], s[end+1:]
	var port uint16
	if rest != "" {
		p, ok := uint16(0), false
		if rest[0] == ':' {
			p, ok = parsePort(rest[1:])
		}
		if !ok {
			return Target{}, targetErr("invalid domain literal %s: only ':port' (1-65535) may follow ']'", show(s))
		}
		port = p
	}
	if len(inner) >= 5 && strings.EqualFold(inner[:5], "IPv6:") {
		a, err := netip.ParseAddr(inner[5:])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return Target{}, targetErr("invalid domain literal %s: not an IPv6 address", show(s))
		}
		if port != 0 {
			return Target{}, targetErr("invalid domain literal %s: an IPv6 literal cannot carry a port", show(s))
		}
		return Target{IP: a}, nil
	}
	a, err := netip.ParseAddr(inner)
	if err != nil {
		// KumoMTA also accepts the port inside the brackets for IPv4.
		ap, err := netip.ParseAddrPort(inner)
		if err != nil || !ap.Addr().Is4() {
			return Target{}, targetErr("invalid domain literal %s: not an IP address", show(s))
		}
		if port != 0 {
			return Target{}, targetErr("invalid domain literal %s: port given twice", show(s))
		}
		if ap.Port() == 0 {
			return Target{}, targetErr("invalid domain literal %s: port 0", show(s))
		}
		return Target{IP: ap.Addr(), Port: ap.Port()}, nil
	}
	if a.Zone() != "" {
		return Target{}, targetErr("invalid domain literal %s: an IPv6 zone cannot be delivered to", show(s))
	}
	if a.Is6() && port != 0 {
		return Target{}, targetErr("invalid domain literal %s: an IPv6 literal cannot carry a port", show(s))
	}
	return Target{IP: a, Port: port}, nil
}

// parsePort reads a decimal port 1-65535 (no sign, no spaces).
func parsePort(s string) (uint16, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// normalizeName checks a DNS name and returns it lower-cased, without a trailing dot and with
// non-ASCII labels as A-labels; reason is non-empty when the name is unusable.
//
// The check is deliberately more liberal than RFC 5321's Domain grammar (underscores and edge
// hyphens pass) because routing names come from operators, whose internal hosts do not always
// follow RFC 1123; what DNS can carry (RFC 1035 §2.3.4: labels of 1-63 octets, names of at most
// 253 characters in text form) is enforced. A numeric last label is refused (RFC 3696 §2: no
// top-level domain is all-numeric), so a mistyped IP address is reported, not looked up.
func normalizeName(name string) (string, string) {
	name = strings.TrimSuffix(name, ".")
	if alreadyNormal(name) {
		return name, "" // the usual case, every dispatch: nothing to build
	}
	return normalizeSlow(name)
}

// alreadyNormal reports whether name is what normalizeSlow would return unchanged: lower-case
// ASCII letters, digits, '-' and '_' in labels of 1-63 octets, at most 253 in all, the last not
// numeric.
func alreadyNormal(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	start := 0 // of the current label
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			if n := i - start; n == 0 || n > 63 {
				return false
			}
			start = i + 1
		} else if c := name[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	if n := len(name) - start; n == 0 || n > 63 {
		return false
	}
	return !allDigits(name[start:])
}

// normalizeSlow is normalizeName for a name that is not already normal (alreadyNormal).
func normalizeSlow(name string) (string, string) {
	if len(name) > 4*253 {
		// Checked before any work, so a hostile input costs nothing; 4 is the longest UTF-8 rune.
		return "", "domain name longer than 253 octets"
	}
	if name == "" {
		return "", "empty domain name"
	}
	if !utf8.ValidString(name) {
		return "", "domain name is not valid UTF-8"
	}
	labels := strings.Split(strings.ToLower(name), ".")
	for i, l := range labels {
		if l == "" {
			return "", "empty label in domain name"
		}
		ascii := true
		for _, r := range l {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			case r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)):
				ascii = false
			default:
				return "", "invalid character " + strconv.QuoteRuneToASCII(r) + " in domain name"
			}
		}
		if !ascii {
			// Every non-ASCII rune costs at least one output character, plus "xn--": a longer
			// label cannot fit, and refusing it here bounds punycodeEncode's quadratic loop.
			if utf8.RuneCountInString(l) > 59 {
				return "", "domain name label longer than 63 octets"
			}
			// SMTPUTF8 (RFC 6531) lets a recipient domain arrive as U-labels; DNS needs the
			// A-label (RFC 5890 §2.3.2.1, RFC 3492). Full IDNA2008 mapping is not done: a label
			// it would refuse simply does not exist in DNS.
			l = "xn--" + punycodeEncode(l)
			labels[i] = l
		}
		if len(l) > 63 {
			return "", "domain name label longer than 63 octets"
		}
	}
	if allDigits(labels[len(labels)-1]) {
		return "", "not an IP address, and a domain name cannot end in a numeric label"
	}
	n := strings.Join(labels, ".")
	if len(n) > 253 {
		return "", "domain name longer than 253 octets"
	}
	return n, ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
