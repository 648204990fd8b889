package classify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestShippedRules(t *testing.T) {
	c := Default()
	for _, tc := range []struct {
		code      int
		enh, text string
		want      string
	}{
		{550, "5.1.1", "user unknown", "InvalidRecipient"},
		{550, "5.1.1", "<bob@example.com>: Recipient address rejected: User unknown in virtual mailbox table", "InvalidRecipient"},
		{550, "", "No such user here", "InvalidRecipient"},
		{552, "5.2.2", "mailbox full", "QuotaIssues"},
		{452, "4.2.2", "The email account that you tried to reach is over quota", "QuotaIssues"},
		{554, "5.7.1", "spam", "SpamBlock"},
		{554, "5.7.1", "Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", "SpamBlock"},
		{550, "5.7.1", "Message rejected by policy", "PolicyRelated"},
		{550, "5.7.26", "Unauthenticated email from example.com is not accepted due to domain's DMARC policy", "AuthenticationFailed"},
		{556, "5.1.10", "recipient domain has a null MX", "BadDomain"},
		{550, "5.2.1", "The email account that you tried to reach is disabled", "InactiveMailbox"},
		{554, "5.6.3", "message has 8-bit content and mx offers neither 8BITMIME nor SMTPUTF8 (conversion not supported)", "ContentRelated"},
		{550, "5.7.1", "relaying denied", "RelayingIssues"},
		{551, "5.4.7", "Next delivery time would be after creation, which exceeds max_age", "MessageExpired"},
		{451, "4.4.2", "connection to mx.example.com lost", "BadConnection"},
		{421, "4.7.0", "Try again later, closing connection", "TransientFailure"},
		{250, "2.0.0", "OK", Uncategorized},
	} {
		if got := c.Classify(tc.code, tc.enh, tc.text); got != tc.want {
			t.Errorf("%d %s %s: %s, want %s", tc.code, tc.enh, tc.text, got, tc.want)
		}
	}
}

func TestOperatorRulesFirstClassWins(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.toml")
	os.WriteFile(path, []byte("[rules]\nMine = ['^550 5\\.1\\.1 .*vip']\nInvalidRecipient = ['^550 5\\.1\\.1 ']\n"), 0o600)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Classify(550, "5.1.1", "VIP user unknown"); got != "Mine" {
		t.Fatalf("got %s, want Mine (the first class in the file)", got)
	}
	if got := c.Classify(550, "5.1.1", "user unknown"); got != "InvalidRecipient" {
		t.Fatalf("got %s", got)
	}
	if got := c.Classify(552, "5.2.2", "mailbox full"); got != Uncategorized {
		t.Fatalf("operator rules replace the shipped ones, got %s", got)
	}
}

func TestBadRules(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"[rules]\nX = ['(']\n", "rules.X[0]"},
		{"[rules]\n'bad name' = ['x']\n", "class name"},
		{"[other]\nX = ['x']\n", "unknown key"},
	} {
		if _, err := Parse(tc.text); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.text, err, tc.want)
		}
	}
}
