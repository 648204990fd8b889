package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
	"github.com/nikolalohinski/gonja/v2/parser"
)

// Templates are Jinja (KumoMTA's default dialect, rendered there by minijinja), here by gonja.
// A template comes from an HTTP client, so the engine is fenced in:
//   - no template can load another one: include, import, from and extends are not parsed, and
//     the loader serves nothing but the template itself (gonja's default loader reads files);
//   - range() is bounded and returns a list: gonja's feeds a channel from a goroutine that
//     leaks when a loop stops early;
//   - the rendered text is capped (maxRender): a loop cannot grow a message without bound.

// maxRangeItems bounds range(): enough for any table in a mail, far from a memory bomb.
const maxRangeItems = 10000

// errTooLarge ends a render whose output passed its cap.
var errTooLarge = errors.New("rendered text exceeds the message size limit")

// allowedStructures are gonja's control structures minus the ones that read other templates
// (include, import, from, extends) and the ones that can recurse (macro, call, block:
// template_limits.go).
var allowedStructures = []string{"autoescape", "filter", "for", "if", "raw", "set", "with", "do", "break", "continue", "trans"}

var tmplEnv = newTemplateEnv()

func newTemplateEnv() *exec.Environment {
	structures := map[string]parser.ControlStructureParser{}
	for _, name := range allowedStructures {
		if p, ok := builtins.ControlStructures.Get(name); ok {
			structures[name] = p
		}
	}
	ctx := exec.EmptyContext().Update(builtins.GlobalFunctions).Update(builtins.GlobalVariables)
	ctx.Set("range", boundedRange)
	ctx.Set("lipsum", func(*exec.Evaluator, *exec.VarArgs) (string, error) {
		return "", errors.New("lipsum is not available in templates") // its size is an argument
	})
	return &exec.Environment{
		Context:           ctx,
		Filters:           guardedFilters(),
		Tests:             builtins.Tests,
		ControlStructures: exec.NewControlStructureSet(structures),
		Methods:           guardedMethods(),
	}
}

func boundedRange(_ *exec.Evaluator, params *exec.VarArgs) ([]int, error) {
	start, stop, step := 0, 0, 1
	for _, a := range params.Args {
		if !a.IsInteger() {
			return nil, errors.New("range: arguments must be integers")
		}
	}
	switch len(params.Args) {
	case 1:
		stop = params.Args[0].Integer()
	case 2:
		start, stop = params.Args[0].Integer(), params.Args[1].Integer()
	case 3:
		start, stop, step = params.Args[0].Integer(), params.Args[1].Integer(), params.Args[2].Integer()
	default:
		return nil, errors.New("range: expected [start, ]stop[, step]")
	}
	if step == 0 {
		return nil, errors.New("range: step must not be zero")
	}
	var out []int
	for i := start; (step > 0 && i < stop) || (step < 0 && i > stop); i += step {
		if len(out) == maxRangeItems {
			return nil, fmt.Errorf("range: more than %d items", maxRangeItems)
		}
		out = append(out, i)
	}
	return out, nil
}

// oneTemplate is a loader that holds a single template and refuses every other name.
type oneTemplate string

const templateName = "t"

func (o oneTemplate) Read(path string) (io.Reader, error) {
	if path != templateName {
		return nil, errors.New("templates cannot load other templates")
	}
	return strings.NewReader(string(o)), nil
}
func (o oneTemplate) Resolve(path string) (string, error)    { return path, nil }
func (o oneTemplate) Inherit(string) (loaders.Loader, error) { return o, nil }

// template is one compiled field; nil renders the source unchanged (Static dialect).
type template struct {
	src string
	t   *exec.Template
}

// compileTemplate parses src; html turns on auto-escaping, as KumoMTA does for html bodies.
func compileTemplate(src string, html, static bool) (tmpl *template, err error) {
	tmpl = &template{src: src}
	if static || !strings.ContainsAny(src, "{") {
		return tmpl, nil // nothing to expand: skip the engine
	}
	cfg := config.New()
	cfg.AutoEscape = html
	cfg.KeepTrailingNewline = true // a body's last line break is the client's, keep it
	defer func() {
		if r := recover(); r != nil {
			tmpl, err = nil, fmt.Errorf("template engine failure: %v", r)
		}
	}()
	t, err := exec.NewTemplate(templateName, cfg, oneTemplate(src), tmplEnv)
	if err != nil {
		return nil, templateErr(err)
	}
	if err := guardTemplate(t.Root()); err != nil {
		return nil, err
	}
	tmpl.t = t
	return tmpl, nil
}

// render expands the template with vars, writing at most limit bytes.
func (t *template) render(vars map[string]any, limit int64) (out string, err error) {
	if t.t == nil {
		if int64(len(t.src)) > limit {
			return "", errTooLarge
		}
		return t.src, nil
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = "", fmt.Errorf("template engine failure: %v", r)
		}
	}()
	w := &cappedBuilder{limit: limit}
	if err := t.t.Execute(w, exec.NewContext(vars)); err != nil {
		if w.over {
			return "", errTooLarge
		}
		return "", templateErr(err)
	}
	return w.b.String(), nil
}

// templateErr shortens the engine's message: gonja quotes the whole template source in it,
// which can be megabytes.
func templateErr(err error) error {
	msg := err.Error()
	if strings.Contains(msg, errValueTooLarge.Error()) {
		return errValueTooLarge // the engine's chain of wrappers would hide it past the cut
	}
	if i := strings.Index(msg, "failed to parse template '"); i >= 0 {
		if j := strings.LastIndex(msg, "': "); j > i {
			msg = msg[:i] + "syntax error: " + msg[j+3:]
		}
	}
	msg = strings.TrimPrefix(msg, "unable to execute template: ")
	const max = 300
	if len(msg) > max {
		msg = msg[:max] + "…"
	}
	return errors.New(msg)
}

type cappedBuilder struct {
	b     strings.Builder
	limit int64
	over  bool
}

func (c *cappedBuilder) Write(p []byte) (int, error) {
	if int64(c.b.Len()+len(p)) > c.limit {
		c.over = true
		return 0, errTooLarge
	}
	return c.b.Write(p)
}

func (c *cappedBuilder) WriteString(s string) (int, error) { return c.Write([]byte(s)) }

// jsonValue turns a decoded substitution (numbers as json.Number) into what the template
// engine renders as Jinja would: integral numbers as integers ("3", not "3.0").
func jsonValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		f, err := x.Float64()
		if err != nil || math.IsInf(f, 0) {
			return x.String()
		}
		return f
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e)
		}
		return out
	}
	return v
}
