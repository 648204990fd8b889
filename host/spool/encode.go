package spool

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/wasmta/wasmta/host/logs/jsontext"
	"github.com/wasmta/wasmta/host/message"
)

// encode returns m's record: byte for byte what json.Marshal(m) writes (the form ScanSched's
// parser reads fastest, and what Get decodes), written by hand because every message is
// encoded once or more and encoding/json's reflection was about 2% of the relay's CPU. A time
// json.Marshal refuses (a year outside 0–9999, a zone offset of a day or more) is handed to it,
// so the error is its own, and so is a record with Failed set. A field added to message.Message must be added here too; the
// differential fuzz test (FuzzEncode) fails until it is.
func encode(m *message.Message) ([]byte, error) {
	if !jsonTime(m.Created) || !jsonTime(m.Due) || m.Failed != nil {
		// Failed is rare (a message waiting for its DSN to be spooled) and not worth a hand
		// encoder of its own.
		return json.Marshal(m)
	}
	b := make([]byte, 0, 512)
	b = append(b, `{"id":`...)
	b = jsontext.AppendString(b, string(m.ID))
	b = append(b, `,"sender":`...)
	b = jsontext.AppendString(b, m.Sender)
	b = append(b, `,"recipient":`...)
	b = jsontext.AppendString(b, m.Recipient)
	if len(m.Meta) > 0 {
		keys := make([]string, 0, len(m.Meta))
		for k := range m.Meta {
			keys = append(keys, k)
		}
		slices.Sort(keys) // encoding/json sorts map keys
		b = append(b, `,"meta":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsontext.AppendString(b, k)
			b = append(b, ':')
			b = jsontext.AppendString(b, m.Meta[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"queue":`...)
	b = jsontext.AppendString(b, m.Queue)
	b = append(b, `,"created":"`...)
	b = m.Created.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","due":"`...)
	b = m.Due.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","attempts":`...)
	b = strconv.AppendInt(b, int64(m.Attempts), 10)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, int64(m.Size), 10)
	b = append(b, `,"body_id":`...)
	b = jsontext.AppendString(b, string(m.BodyID))
	b = append(b, `,"protocol":`...)
	b = jsontext.AppendString(b, m.Protocol)
	b = optional(b, `,"peer_name":`, m.PeerName)
	b = optional(b, `,"peer_addr":`, m.PeerAddr)
	b = optional(b, `,"authn_id":`, m.AuthnID)
	if t := m.TLS; t != nil {
		b = append(b, `,"tls":{"version":`...)
		b = jsontext.AppendString(b, t.Version)
		b = append(b, `,"cipher":`...)
		b = jsontext.AppendString(b, t.Cipher)
		b = append(b, '}')
	}
	if len(m.Policy) > 0 {
		b = appendStrings(append(b, `,"policy":`...), m.Policy)
	}
	if d := m.DSN; d != nil {
		b = append(b, `,"dsn":{`...)
		n := len(b)
		b = optional(b, `,"ret":`, d.Ret)
		b = optional(b, `,"envid":`, d.EnvID)
		if len(d.Notify) > 0 {
			b = appendStrings(append(b, `,"notify":`...), d.Notify)
		}
		b = optional(b, `,"orcpt_type":`, d.ORcptType)
		b = optional(b, `,"orcpt":`, d.ORcpt)
		if len(b) > n {
			b = append(b[:n], b[n+1:]...) // the first field's comma
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// jsonTime reports whether json.Marshal writes t without an error (time.Time.MarshalJSON
// refuses years outside 0–9999 and zone offsets of 24 hours or more).
func jsonTime(t time.Time) bool {
	_, off := t.Zone()
	return t.Year() >= 0 && t.Year() <= 9999 && off > -24*3600 && off < 24*3600
}

// optional appends an omitempty string field.
func optional(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	return jsontext.AppendString(append(b, key...), v)
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsontext.AppendString(b, s)
	}
	return append(b, ']')
}
