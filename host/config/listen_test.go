package config

import (
	"strings"
	"testing"
)

// Listen addresses serve could not bind all at once are refused naming the key; those it can
// (two families' loopbacks on one port, port 0 twice) are accepted.
func TestListenCollisions(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"[smtp]\nlisten = [\"127.0.0.1:25\", \"127.0.0.1:25\"]", "smtp.listen"},
		{"[smtp]\nlisten = [\"127.0.0.1:25\", \"[::ffff:127.0.0.1]:25\"]", "smtp.listen"},
		{"[smtp]\nlisten = [\"[::1]:25\", \"0.0.0.0:25\"]", "smtp.listen"},
		{"[smtp]\nlisten = [\"127.0.0.1:25\"]\nlisten_tls = [\"[::]:25\"]", "smtp.listen_tls"},
		{"[smtp]\nlisten = [\"127.0.0.1:8025\"]", "http.listen"}, // the default http.listen
		{"[smtp]\nlisten = [\"127.0.0.1:25\", \"[::1]:25\", \"127.0.0.1:0\", \"127.0.0.1:0\"]\n[http]\nlisten = \"127.0.0.1:0\"", ""},
		{"[smtp]\nlisten = [\"0.0.0.0:25\"]\nlisten_tls = [\"0.0.0.0:465\"]\n[http]\nlisten = \"127.0.0.1:8025\"", ""},
	} {
		_, err := Parse(c.text)
		if c.want == "" {
			if err != nil {
				t.Errorf("%q: %v, want accepted", c.text, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "configuration key "+c.want+":") {
			t.Errorf("%q: %v, want an error naming %s", c.text, err, c.want)
		}
	}
}
