package route

import (
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/wasmta/wasmta/host/message"
)

// Length limits of RFC 5321 §4.5.3.1, in octets.
const (
	MaxLocalPart = 64  // §4.5.3.1.1
	MaxDomain    = 255 // §4.5.3.1.2
	// MaxMailbox is the longest mailbox that fits a path (§4.5.3.1.3: 256 octets including the
	// angle brackets).
	MaxMailbox = 256 - 2
)

// addrErr is the error for a malformed envelope address: 553 5.1.3 ("bad destination mailbox
// address syntax", RFC 3463). A MAIL FROM caller should answer with the same text under 5.1.7
// ("bad sender's mailbox address syntax"); the reply code (501 or 553) is the caller's choice too.
func addrErr(format string, args ...any) *message.Error {
	return message.Errorf(553, "5.1.3", format, args...)
}

// ParseMailbox checks an envelope address (the content of MAIL FROM:<...> or RCPT TO:<...>,
// without the angle brackets) against RFC 5321 §4.1.2 and splits it at the '@' that ends the
// local part. local and domain are returned as written; the caller lower-cases the domain.
//
// Accepted: a Dot-string or Quoted-string local part; a domain name; an address literal
// "[10.0.0.1]" or "[IPv6:::1]" (tag case-insensitive, RFC 5321 §4.1.3). Non-ASCII UTF-8 is
// accepted in the local part and domain (RFC 6531); whether SMTPUTF8 was negotiated is the
// caller's check. Refused, with a *message.Error 553 5.1.3 whose text says why:
//   - the empty string (the null reverse-path "<>" is the caller's case, as is the bare
//     "Postmaster" recipient of RFC 5321 §4.1.1.3), source routes and angle brackets;
//   - an untagged IPv6 literal "[::1]", which RFC 5321 §4.1.3 does not allow (routing config may
//     use it, see ParseTarget, but envelopes must not);
//   - a general address literal "[tag:content]": no tag other than IPv6 is standardized, so such
//     mail could never be delivered;
//   - parts longer than RFC 5321 §4.5.3.1 allows (local part 64, domain 255, path 256 octets) and
//     domain labels longer than 63 octets (RFC 1035 §2.3.4).
func ParseMailbox(addr string) (local, domain string, err error) {
	if addr == "" {
		return "", "", addrErr("invalid address: empty")
	}
	if len(addr) > MaxMailbox {
		return "", "", addrErr("invalid address: longer than %d octets (RFC 5321 section 4.5.3.1.3)", MaxMailbox)
	}
	if !utf8.ValidString(addr) {
		return "", "", addrErr("invalid address %s: not valid UTF-8", show(addr))
	}
	var at int
	if addr[0] == '"' {
		at, err = scanQuotedString(addr)
	} else {
		at, err = scanDotString(addr)
	}
	if err != nil {
		return "", "", err
	}
	if at == len(addr) || addr[at] != '@' {
		if at == len(addr) {
			return "", "", addrErr("invalid address %s: missing '@domain'", show(addr))
		}
		return "", "", addrErr("invalid address %s: unexpected %s in local part", show(addr), show(addr[at:at+1]))
	}
	local, domain = addr[:at], addr[at+1:]
	if len(local) > MaxLocalPart {
		return "", "", addrErr("invalid address %s: local part longer than %d octets (RFC 5321 section 4.5.3.1.1)", show(addr), MaxLocalPart)
	}
	if len(domain) > MaxDomain {
		return "", "", addrErr("invalid address %s: domain longer than %d octets (RFC 5321 section 4.5.3.1.2)", show(addr), MaxDomain)
	}
	if domain == "" {
		return "", "", addrErr("invalid address %s: empty domain", show(addr))
	}
	if domain[0] == '[' {
		err = checkAddressLiteral(addr, domain)
	} else {
		err = checkDomain(addr, domain)
	}
	if err != nil {
		return "", "", err
	}
	return local, domain, nil
}

// isAtext reports whether r may appear in an Atom: RFC 5321 §4.1.2 atext (RFC 5322 §3.2.3),
// extended with non-ASCII by RFC 6531 §3.3. Control characters are refused in every case
// so that an address cannot smuggle them into logs.
func isAtext(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	case r < utf8.RuneSelf:
		return strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
	default:
		return !unicode.IsControl(r)
	}
}

// scanDotString returns the index just past a Dot-string (Atom *("." Atom)) at the start of s.
func scanDotString(s string) (int, error) {
	i := 0
	for {
		start := i
		for i < len(s) {
			r, size := utf8.DecodeRuneInString(s[i:])
			if !isAtext(r) {
				break
			}
			i += size
		}
		if i > start {
			if i < len(s) && s[i] == '.' {
				i++
				continue
			}
			return i, nil
		}
		// An empty atom: say which mistake it is.
		next := runeAt(s, i)
		switch {
		case i == 0 && next == "@":
			return 0, addrErr("invalid address %s: empty local part (source routes are not supported)", show(s))
		case i == 0 && next == ".":
			return 0, addrErr("invalid address %s: local part starts with a dot", show(s))
		case i == 0 && next == "<":
			return 0, addrErr("invalid address %s: angle brackets do not belong in the address", show(s))
		case i > 0 && next == ".":
			return 0, addrErr("invalid address %s: two dots in a row in local part", show(s))
		case i > 0 && (next == "@" || next == ""):
			return 0, addrErr("invalid address %s: local part ends with a dot", show(s))
		default:
			return 0, addrErr("invalid address %s: unexpected %s in local part", show(s), show(next))
		}
	}
}

// scanQuotedString returns the index just past a Quoted-string at the start of s
// (RFC 5321 §4.1.2: qtextSMTP is printable ASCII except '"' and '\', quoted-pairSMTP is '\'
// and one printable ASCII character or space; RFC 6531 adds non-ASCII to qtextSMTP).
func scanQuotedString(s string) (int, error) {
	i := 1
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '"':
			return i + 1, nil
		case r == '\\':
			if i+1 >= len(s) || s[i+1] < 32 || s[i+1] > 126 {
				return 0, addrErr("invalid address %s: bad quoted pair in local part", show(s))
			}
			i += 2
			continue
		case r >= 32 && r <= 126:
		case r >= utf8.RuneSelf && !unicode.IsControl(r):
		default:
			return 0, addrErr("invalid address %s: control character in quoted local part", show(s))
		}
		i += size
	}
	return 0, addrErr("invalid address %s: unterminated quoted local part", show(s))
}

// runeAt returns the (possibly multi-byte) character at s[i], or "" at the end.
func runeAt(s string, i int) string {
	if i >= len(s) {
		return ""
	}
	_, size := utf8.DecodeRuneInString(s[i:])
	return s[i : i+size]
}

// checkDomain checks Domain = sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str]
// (RFC 5321 §4.1.2): letters, digits and inner hyphens; a U-label's non-ASCII letters, digits and
// marks (RFC 6531 §3.3). Labels are at most 63 octets (RFC 1035 §2.3.4).
func checkDomain(addr, domain string) error {
	for _, l := range strings.Split(domain, ".") {
		if l == "" {
			return addrErr("invalid address %s: empty label in domain", show(addr))
		}
		if len(l) > 63 {
			return addrErr("invalid address %s: domain label longer than 63 octets", show(addr))
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return addrErr("invalid address %s: domain label starts or ends with '-'", show(addr))
		}
		for _, r := range l {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			case r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)):
			default:
				return addrErr("invalid address %s: invalid character %s in domain", show(addr), show(string(r)))
			}
		}
	}
	return nil
}

// checkAddressLiteral checks address-literal = "[" ( IPv4-address-literal /
// IPv6-address-literal / General-address-literal ) "]" (RFC 5321 §4.1.3), allowing only the
// two deliverable forms.
func checkAddressLiteral(addr, lit string) error {
	if lit[len(lit)-1] != ']' || strings.IndexByte(lit, ']') != len(lit)-1 {
		return addrErr("invalid address %s: domain literal must end with its only ']'", show(addr))
	}
	inner := lit[1 : len(lit)-1]
	if len(inner) >= 5 && strings.EqualFold(inner[:5], "IPv6:") {
		a, err := netip.ParseAddr(inner[5:])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return addrErr("invalid address %s: bad IPv6 address in domain literal", show(addr))
		}
		return nil
	}
	a, err := netip.ParseAddr(inner)
	switch {
	case err == nil && a.Is4():
		return nil
	case err == nil:
		return addrErr("invalid address %s: an IPv6 domain literal needs the 'IPv6:' tag, as in [IPv6:%s] (RFC 5321 section 4.1.3)", show(addr), a.WithZone("").String())
	case strings.IndexByte(inner, ':') > 0:
		return addrErr("invalid address %s: unsupported address literal tag (only IPv6 is deliverable)", show(addr))
	default:
		return addrErr("invalid address %s: bad IPv4 address in domain literal", show(addr))
	}
}
