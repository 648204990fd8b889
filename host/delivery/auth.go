package delivery

import (
	"encoding/base64"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/wasmta/wasmta/host/message"
)

// maxAuthSteps bounds the challenges one AUTH exchange may take: PLAIN needs none, LOGIN two.
const maxAuthSteps = 4

// auth authenticates to a smarthost (RFC 4954) with PLAIN, or LOGIN when the server offers
// only that. Credentials never cross a plain-text connection unless the operator allowed it
// (allow_smtp_auth_plain_without_tls): opportunistic TLS can end in plain text, and an
// attacker who strips STARTTLS must not be handed the password.
//
// Every failure is transient, also a 535 from the server: a wrong or rotated password is an
// operator's mistake to fix, not a reason to bounce every waiting message (Postfix's
// smtp_sasl_auth_soft_bounce). The error carries the server's reply, never our commands,
// which hold the password.
func (c *Conn) auth() error {
	if !c.tls && !c.opt.AllowAuthWithoutTLS {
		return message.Errorf(451, "4.7.10", "AUTH to %s needs TLS and the connection is not encrypted", c.host.Name)
	}
	var client sasl.Client
	offered := strings.Fields(strings.ToUpper(c.ext["AUTH"]))
	switch {
	case contains(offered, sasl.Plain):
		client = sasl.NewPlainClient("", c.opt.AuthUsername, c.opt.AuthPassword)
	case contains(offered, sasl.Login):
		client = sasl.NewLoginClient(c.opt.AuthUsername, c.opt.AuthPassword)
	default:
		return message.Errorf(451, "4.7.0", "%s does not offer AUTH PLAIN or LOGIN", c.host.Name)
	}
	mech, ir, err := client.Start()
	if err != nil {
		return message.Errorf(451, "4.7.0", "AUTH to %s could not start", c.host.Name)
	}
	line := "AUTH " + mech
	if ir != nil {
		// RFC 4954 §4: an initial response, "=" when it is empty.
		enc := "="
		if len(ir) > 0 {
			enc = base64.StdEncoding.EncodeToString(ir)
		}
		line += " " + enc
	}
	for step := 0; ; step++ {
		if err := c.cmd(line); err != nil {
			return err
		}
		code, lines, err := c.readAny(c.opt.CommandTimeout)
		switch {
		case err != nil:
			return err
		case code == 235: // RFC 4954 §6: authentication succeeded
			return nil
		case code != 334:
			return message.Errorf(451, "4.7.8", "authentication to %s failed: %s", c.host.Name, parseReply(code, lines))
		case step == maxAuthSteps:
			c.abortAuth()
			return message.Errorf(451, "4.7.0", "AUTH to %s took more than %d steps", c.host.Name, maxAuthSteps)
		}
		// 334: a base64 challenge (RFC 4954 §4).
		chal, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(lines[0]))
		if derr != nil {
			c.abortAuth()
			return message.Errorf(451, "4.7.0", "%s sent a malformed AUTH challenge", c.host.Name)
		}
		resp, nerr := client.Next(chal)
		if nerr != nil {
			c.abortAuth()
			return message.Errorf(451, "4.7.0", "AUTH to %s: unexpected challenge", c.host.Name)
		}
		line = base64.StdEncoding.EncodeToString(resp)
	}
}

// abortAuth cancels an exchange in progress (RFC 4954 §4: a line "*") and reads the reply.
func (c *Conn) abortAuth() {
	if c.cmd("*") == nil {
		_, _, _ = c.readAny(c.opt.CommandTimeout)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
