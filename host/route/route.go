// Package route turns a message's envelope and meta into a place to deliver it: the scheduled
// queue name (design.md §2), the destination written in that name or in an mx_list (design.md §3), and the
// site the destination resolves to through DNS (design.md §4).
//
// Names and formats follow KumoMTA so that its users, scripts and log consumers feel at home:
// "[campaign:][tenant@]domain[!routing_domain]" queue names, "[10.0.0.1]" / "[IPv6:::1]" domain
// literals, "mx_list:a,b" site names.
//
// Every failure that decides a message's fate is a *message.Error: permanent (5xx) when retrying
// cannot help (bad syntax, null MX, prohibited host), transient (4xx) when DNS may answer later.
// Reply texts are safe to show to a peer; internal detail (resolver addresses, socket errors)
// travels only in the error's Cause.
package route

import (
	"fmt"
	"unicode/utf8"
)

// maxShown bounds how much of an untrusted input an error text repeats, so that a hostile
// RCPT TO cannot make us send or log kilobytes of its own bytes back.
const maxShown = 80

// show quotes s for an error text: ASCII only (%+q escapes everything else, so no control
// characters reach a reply or a log line) and truncated to maxShown bytes.
func show(s string) string {
	if len(s) > maxShown {
		cut := maxShown
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%+q...", s[:cut])
	}
	return fmt.Sprintf("%+q", s)
}
