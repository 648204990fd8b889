// Package classify sorts SMTP failure replies into bounce classes (KumoMTA's names:
// InvalidRecipient, BadDomain, QuotaIssues, SpamBlock, ...) with regular-expression rules
// from a TOML file. The rules the relay ships are embedded (rules.toml); an operator may load
// their own with [logs] bounce_rules. The log writer puts the class in the
// bounce_classification field of Bounce and TransientFailure records.
package classify

import (
	_ "embed"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Uncategorized is the class of a reply that no rule matches.
const Uncategorized = "Uncategorized"

// DefaultRules is the shipped rules file.
//
//go:embed rules.toml
var DefaultRules string

// Limits on a rules file: classification runs for every failed attempt, and the file may come
// from an operator.
const (
	maxRulesSize = 1 << 20 // bytes
	maxPatterns  = 4096
)

var className = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)

// Classifier maps a reply to a class. It is safe for concurrent use.
type Classifier struct {
	classes []class
}

type class struct {
	name string
	re   *regexp.Regexp // the class's expressions joined into one alternation
}

// Default returns the classifier of the shipped rules.
func Default() *Classifier {
	c, err := Parse(DefaultRules)
	if err != nil {
		panic("classify: shipped rules.toml: " + err.Error()) // a test parses it
	}
	return c
}

// Load reads a rules file; "" means the shipped rules.
func Load(path string) (*Classifier, error) {
	if path == "" {
		return Default(), nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > maxRulesSize {
		return nil, fmt.Errorf("%s: %d bytes, at most %d", path, st.Size(), maxRulesSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse compiles rules text: a [rules] table whose keys are class names and whose values are
// lists of regular expressions. Classes keep the order of the text.
func Parse(text string) (*Classifier, error) {
	var f struct {
		Rules map[string][]string `toml:"rules"`
	}
	md, err := toml.Decode(text, &f)
	if err != nil {
		return nil, err
	}
	if u := md.Undecoded(); len(u) > 0 {
		return nil, fmt.Errorf("unknown key %s (rules go in the [rules] table)", u[0])
	}
	c := &Classifier{}
	n := 0
	for _, k := range md.Keys() {
		if len(k) != 2 || k[0] != "rules" {
			continue
		}
		name := k[1]
		if !className.MatchString(name) {
			return nil, fmt.Errorf("rules.%s: a class name is a letter then up to 63 letters, digits or _", strconv.Quote(name))
		}
		pats := f.Rules[name]
		n += len(pats)
		if n > maxPatterns {
			return nil, fmt.Errorf("more than %d expressions", maxPatterns)
		}
		if len(pats) == 0 {
			continue
		}
		for i, p := range pats {
			if _, err := regexp.Compile(p); err != nil {
				return nil, fmt.Errorf("rules.%s[%d]: %w", name, i, err)
			}
		}
		re, err := regexp.Compile("(?i)(?:" + strings.Join(pats, ")|(?:") + ")")
		if err != nil {
			return nil, fmt.Errorf("rules.%s: %w", name, err)
		}
		c.classes = append(c.classes, class{name: name, re: re})
	}
	return c, nil
}

// Normalize renders a reply as the rules see it: "<code> <enhanced> <text>", the enhanced
// code left out when empty, line breaks turned into spaces.
func Normalize(code int, enhanced, text string) string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(code))
	b.WriteByte(' ')
	if enhanced != "" {
		b.WriteString(enhanced)
		b.WriteByte(' ')
	}
	b.WriteString(strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(text))
	return b.String()
}

// Classify returns the first class (in file order) with an expression matching the
// normalized reply, or Uncategorized.
func (c *Classifier) Classify(code int, enhanced, text string) string {
	s := Normalize(code, enhanced, text)
	for _, cl := range c.classes {
		if cl.re.MatchString(s) {
			return cl.name
		}
	}
	return Uncategorized
}
