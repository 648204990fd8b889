package logs

import (
	"slices"
	"strconv"

	"github.com/wasmta/wasmta/host/logs/jsontext"
)

// appendRecord appends r as JSON, byte for byte what json.Marshal(r) writes (field order,
// omitempty, sorted meta keys, and encoding/json's string escaping, HTML characters
// included): every message logs two records or more, and encoding/json's reflection was about
// 3% of the relay's CPU. A field added to Record must be added here too; the differential
// fuzz test (FuzzAppendRecord) fails until it is.
func appendRecord(b []byte, r *Record) []byte {
	b = append(b, `{"type":`...)
	b = jsontext.AppendString(b, r.Type)
	b = append(b, `,"id":`...)
	b = jsontext.AppendString(b, r.ID)
	b = append(b, `,"sender":`...)
	b = jsontext.AppendString(b, r.Sender)
	b = append(b, `,"recipient":`...)
	b = jsontext.AppendString(b, r.Recipient)
	b = append(b, `,"queue":`...)
	b = jsontext.AppendString(b, r.Queue)
	b = append(b, `,"site":`...)
	b = jsontext.AppendString(b, r.Site)
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
	b = jsontext.AppendString(b, r.Response.Content)
	if r.Response.Command != "" {
		b = append(b, `,"command":`...)
		b = jsontext.AppendString(b, r.Response.Command)
	}
	b = append(b, `},"peer_address":`...)
	if p := r.PeerAddress; p == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"name":`...)
		b = jsontext.AppendString(b, p.Name)
		b = append(b, `,"addr":`...)
		b = jsontext.AppendString(b, p.Addr)
		b = append(b, '}')
	}
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, r.Timestamp, 10)
	b = append(b, `,"event_time":`...)
	b = jsontext.AppendString(b, r.EventTime)
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
			b = jsontext.AppendString(b, p)
		}
		b = append(b, ']')
	}
	b = appendOptional(b, `,"authn_id":`, r.AuthnID)
	if t := r.TLS; t != nil {
		b = append(b, `,"tls":{"version":`...)
		b = jsontext.AppendString(b, t.Version)
		b = append(b, `,"cipher":`...)
		b = jsontext.AppendString(b, t.Cipher)
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
	return jsontext.AppendString(append(b, key...), v)
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
		b = jsontext.AppendString(b, k)
		b = append(b, ':')
		b = jsontext.AppendString(b, m[k])
	}
	return append(b, '}')
}
