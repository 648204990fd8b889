package delivery

import (
	"fmt"
	"strings"

	"github.com/wasmta/wasmta/host/message"
)

// OffersDSN reports whether the server offered the DSN extension (RFC 3461) in its EHLO
// reply: when it did not, the client's NOTIFY, RET, ENVID and ORCPT stop here, and the queue
// sends a "relayed" DSN to a sender who asked for NOTIFY=SUCCESS (RFC 3461 §5.2.2).
func (c *Conn) OffersDSN() bool {
	_, ok := c.ext["DSN"]
	return ok
}

// dsnMailParams are MAIL FROM's RFC 3461 parameters for dsn: RET (§4.3) and ENVID (§4.4,
// xtext).
func dsnMailParams(dsn *message.DSN) string {
	var b strings.Builder
	if dsn.Ret != "" {
		b.WriteString(" RET=" + dsn.Ret)
	}
	if dsn.EnvID != "" {
		b.WriteString(" ENVID=" + xtext(dsn.EnvID))
	}
	return b.String()
}

// dsnRcptParams are RCPT TO's RFC 3461 parameters for dsn: NOTIFY (§4.1) and ORCPT (§4.2: the
// address type, then the address as xtext, or as RFC 6533's utf-8-addr-xtext for "UTF-8").
func dsnRcptParams(dsn *message.DSN) string {
	var b strings.Builder
	if len(dsn.Notify) > 0 {
		b.WriteString(" NOTIFY=" + strings.Join(dsn.Notify, ","))
	}
	if dsn.ORcptType != "" && dsn.ORcpt != "" {
		addr := xtext(dsn.ORcpt)
		if strings.EqualFold(dsn.ORcptType, "UTF-8") {
			addr = utf8AddrXtext(dsn.ORcpt)
		}
		b.WriteString(" ORCPT=" + dsn.ORcptType + ";" + addr)
	}
	return b.String()
}

// xtext encodes s as RFC 3461 §4 xtext: an octet outside "!" to "~", and "+" and "=", become
// "+" and two upper-case hex digits.
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '!' || c > '~' || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// utf8AddrXtext encodes s as RFC 6533 §3 utf-8-addr-xtext: a character outside "!" to "~",
// and "+", "=" and "\", become "\x{" and its code point in upper-case hex and "}".
func utf8AddrXtext(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < '!' || r > '~' || r == '+' || r == '=' || r == '\\' {
			fmt.Fprintf(&b, `\x{%X}`, r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}
