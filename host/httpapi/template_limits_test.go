package httpapi

import (
	"strings"
	"testing"
)

// Each of these killed the whole relay before the fence (a Go stack overflow or an allocation
// of gigabytes is fatal, not a panic): now each fails only its own render, with a clear error,
// quickly and without a large allocation.
func TestTemplateCannotCrashTheRelay(t *testing.T) {
	for _, c := range []struct{ name, src, want string }{
		{"macro recursion", `{% macro f(n) %}{{ f(n+1) }}{% endmacro %}{{ f(0) }}`, "macro"},
		{"macro passed to itself", `{% macro m(g) %}{{ g(g) }}{% endmacro %}{{ m(m) }}`, "macro"},
		{"block calling itself", `{% block b %}{{ self.b() }}{% endblock %}`, "block"},
		{"recursive loop", `{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}`, "recursive"},
		{"call block", `{% call x() %}{% endcall %}`, "call"},
		{"string repetition", `{{ 'ab' * 100000000000 }}`, "template value larger"},
		{"repetition of a variable", `{% set s = 'abcdefgh' %}{{ s * n }}`, "template value larger"},
		{"doubling by concatenation", `{% set a = 'x' * 1000000 %}{% set a = a ~ a %}{% set a = a ~ a %}{% set a = a ~ a %}{% set a = a ~ a %}{% set a = a ~ a %}{% set a = a ~ a %}{{ a | length }}`, "template value larger"},
		{"doubling with plus", `{% set a = 'x' * 30000000 %}{% set a = a + a %}{{ a | length }}`, "template value larger"},
		{"padding filter", `{{ 'a' | center(100000000000) }}`, "center"},
		{"padding method", `{{ 'a'.ljust(100000000000) }}`, "ljust"},
		{"format width", `{{ '%100000000000d' | format(1) }}`, "format"},
		{"lipsum", `{{ lipsum(100000000) }}`, "lipsum"},
		{"replace amplification", `{% set s = 'a' * 1000000 %}{{ s | replace('a', 'b' * 1000) }}`, "template value larger"},
		{"join amplification", `{{ range(10000) | join('x' * 10000) }}`, "template value larger"},
		{"self-containing list", `{% set l = [1] %}{% do l.append(l) %}{{ l }}`, "append"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tm, err := compileTemplate(c.src, false, false)
			if err == nil {
				_, err = tm.render(map[string]any{"n": 1 << 40}, 20<<20)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, c.want)
			}
		})
	}
}

// What templates in mail do keeps working under the fence.
func TestTemplateFenceKeepsEverydayJinja(t *testing.T) {
	for src, want := range map[string]string{
		`{{ name | default('friend') | title }}`:                                                              "Friend",
		`{% for i in items %}{{ loop.index }}:{{ i ~ '!' }} {% endfor %}`:                                     "1:a! 2:b! ",
		`{{ 'ab' * 3 }}{{ 2 * 3 }}{{ 1.5 * 2 }}{{ 1 + 2 }}{{ [1] + [2] }}`:                                    "ababab63.03[1, 2]",
		`{{ items | join(', ') }} {{ ', '.join(items) }}`:                                                     "a, b a, b",
		`{{ 'a-b' | replace('-', '+') }} {{ 'Hi'.upper() }}`:                                                  "a+b HI",
		`{% set ns = namespace(t=0) %}{% for i in range(3) %}{% set ns.t = ns.t + i %}{% endfor %}{{ ns.t }}`: "3",
		`{{ 'x' | truncate(10) }}{{ items | length }}{{ items | first }}`:                                     "x2a",
	} {
		tm, err := compileTemplate(src, false, false)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		got, err := tm.render(map[string]any{"items": []any{"a", "b"}}, 1<<20)
		if err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %q", src, got, err, want)
		}
	}
}
