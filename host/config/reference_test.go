package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The reference config is what operators copy: parsed, it must be exactly the defaults, so
// every value it shows is the value a key has when left out.
func TestReferenceIsTheDefaults(t *testing.T) {
	c, err := Parse(Reference)
	if err != nil {
		t.Fatalf("reference.toml does not parse: %v", err)
	}
	got, want := fmt.Sprintf("%+v", *c), fmt.Sprintf("%+v", Defaults())
	if got != want {
		t.Fatalf("reference.toml differs from Defaults():\n got %s\nwant %s", got, want)
	}
}

// Every key of Config (found through its toml tags, so a new field cannot be forgotten) is in
// the reference config, set or (where no value can stand for the default, or an entry would need
// files) commented out; and the reference names no key that Config lacks.
func TestReferenceHasEveryKey(t *testing.T) {
	want := tomlKeys(reflect.TypeOf(Config{}), "")
	have := referenceKeys(Reference)
	for _, k := range want {
		if !slices.Contains(have, k) {
			t.Errorf("key %s is missing from reference.toml", k)
		}
	}
	free := freeFormKeys(reflect.TypeOf(Config{}), "")
	for _, k := range have {
		if slices.ContainsFunc(free, func(m string) bool { return strings.HasPrefix(k, m+".") }) {
			continue // an example entry of a free-form table ([secrets], [plugins.config])
		}
		if !slices.Contains(want, k) {
			t.Errorf("reference.toml names %s, which is not a configuration key", k)
		}
	}
}

// tomlKeys lists the dotted key of every field with a toml tag; a table (struct) or an array of
// tables ([]struct) contributes its own name and its fields', a free-form map its name only.
func tomlKeys(typ reflect.Type, prefix string) []string {
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, tomlKeys(f.Type, prefix)...) // embedded: its keys are the table's
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		out = append(out, key)
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && len(tomlKeys(ft, "")) > 0 {
			out = append(out, tomlKeys(ft, key+".")...)
		}
	}
	return out
}

// freeFormKeys lists the keys whose values are free-form maps (their entries are the user's).
func freeFormKeys(typ reflect.Type, prefix string) []string {
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		switch {
		case f.Anonymous && name == "" && ft.Kind() == reflect.Struct:
			out = append(out, freeFormKeys(ft, prefix)...)
		case name == "" || name == "-":
		case ft.Kind() == reflect.Map:
			out = append(out, prefix+name)
		case ft.Kind() == reflect.Struct:
			out = append(out, freeFormKeys(ft, prefix+name+".")...)
		}
	}
	return out
}

var (
	tableLine = regexp.MustCompile(`^#?\s*\[\[?([a-z_.]+)\]\]?\s*(#.*)?$`)
	keyLine   = regexp.MustCompile(`^#?\s*([a-z_]+)\s*=`)
)

// referenceKeys reads the keys a TOML text sets or shows commented out ("# key = ..."), as
// dotted paths under their [table] or [[array]] headers (commented or not). Tables nested in a
// free-form plugin config are the plugin's, not ours.
func referenceKeys(text string) []string {
	var out []string
	table := ""
	add := func(k string) {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if m := tableLine.FindStringSubmatch(line); m != nil {
			table = m[1]
			if !strings.HasPrefix(table, "plugins.config.") {
				add(table)
			}
			continue
		}
		m := keyLine.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(table, "plugins.config") {
			continue
		}
		if table == "" {
			add(m[1])
		} else {
			add(table + "." + m[1])
		}
	}
	return out
}
