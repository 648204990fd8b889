package logs

import (
	"slices"
	"strconv"
	"unicode/utf8"
)

// appendRecord appends r as JSON, byte for byte what json.Marshal(r) writes (field order,
// omitempty, sorted meta keys, and encoding/json's string escaping, HTML characters
// included): every message logs two records or more, and encoding/json's reflection was about
// 3% of the relay's CPU. A field added to Record must be added here too; the differential
// fuzz test (FuzzAppendRecord) fails until it is.
func appendRecord(b []byte, r *Record) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, r.Type)
	b = append(b, `,"id":`...)
	b = appendString(b, r.ID)
	b = append(b, `,"sender":`...)
	b = appendString(b, r.Sender)
	b = append(b, `,"recipient":`...)
	b = appendString(b, r.Recipient)
	b = append(b, `,"queue":`...)
	b = appendString(b, r.Queue)
	b = append(b, `,"site":`...)
	b = appendString(b, r.Site)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, int64(r.Size), 10)
	b = append(b, `,"response":{"code":`...)
	b = strconv.AppendInt(b, int64(r.Response.Code), 10)
	b = append(b, `,"enhanced_code":`...)
	if c := r.Response.EnhancedCode; c == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"class":`...)
		b = strconv.AppendInt(b, int64(c.Class), 10)
		b = append(b, `,"subject":`...)
		b = strconv.AppendInt(b, int64(c.Subject), 10)
		b = append(b, `,"detail":`...)
		b = strconv.AppendInt(b, int64(c.Detail), 10)
		b = append(b, '}')
	}
	b = append(b, `,"content":`...)
	b = appendString(b, r.Response.Content)
	if r.Response.Command != "" {
		b = append(b, `,"command":`...)
		b = appendString(b, r.Response.Command)
	}
	b = append(b, `},"peer_address":`...)
	if p := r.PeerAddress; p == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"name":`...)
		b = appendString(b, p.Name)
		b = append(b, `,"addr":`...)
		b = appendString(b, p.Addr)
		b = append(b, '}')
	}
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, r.Timestamp, 10)
	b = append(b, `,"event_time":`...)
	b = appendString(b, r.EventTime)
	b = append(b, `,"created":`...)
	b = strconv.AppendInt(b, r.Created, 10)
	b = append(b, `,"num_attempts":`...)
	b = strconv.AppendInt(b, int64(r.NumAttempts), 10)
	b = append(b, `,"meta":`...)
	b = appendMeta(b, r.Meta)
	b = appendOptional(b, `,"reception_protocol":`, r.ReceptionProtocol)
	b = appendOptional(b, `,"delivery_protocol":`, r.DeliveryProtocol)
	if len(r.Policy) > 0 {
		b = append(b, `,"policy":[`...)
		for i, p := range r.Policy {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, p)
		}
		b = append(b, ']')
	}
	b = appendOptional(b, `,"authn_id":`, r.AuthnID)
	if t := r.TLS; t != nil {
		b = append(b, `,"tls":{"version":`...)
		b = appendString(b, t.Version)
		b = append(b, `,"cipher":`...)
		b = appendString(b, t.Cipher)
		if t.Verified != nil {
			b = append(b, `,"verified":`...)
			b = strconv.AppendBool(b, *t.Verified)
		}
		b = append(b, '}')
	}
	b = appendOptional(b, `,"bounce_classification":`, r.BounceClassification)
	b = appendOptional(b, `,"egress_pool":`, r.EgressPool)
	b = appendOptional(b, `,"egress_source":`, r.EgressSource)
	return append(b, '}')
}

// appendOptional appends an omitempty string field.
func appendOptional(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	return appendString(append(b, key...), v)
}

// appendMeta appends the map with its keys sorted, as encoding/json does; nil is null.
func appendMeta(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	var small [8]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, m[k])
	}
	return append(b, '}')
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json does by default: '"' and '\\'
// escaped, \b \f \n \r \t by name, other control characters and the HTML characters <, >
// and & as \u00XX, invalid UTF-8 as \ufffd, and U+2028 and U+2029 as \u2028 and \u2029
// (they end lines in JavaScript).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
