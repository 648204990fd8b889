package config

import (
	"reflect"
	"slices"
	"strings"
)

// Reloaded are the keys a reload applies (host/app Reload): the plugins and the DKIM keys.
// Everything else is read once, at start.
var Reloaded = []string{"plugins", "dkim"}

// ChangedKeys lists the keys whose values differ between two configs, as dotted TOML names
// (a table or list that differs as a whole is named once), leaving out the Reloaded ones. A
// reload reports them: they changed in the file but apply only after a restart.
func ChangedKeys(old, new *Config) []string {
	var out []string
	diffKeys("", reflect.ValueOf(*old), reflect.ValueOf(*new), &out)
	return out
}

func diffKeys(prefix string, a, b reflect.Value, out *[]string) {
	t := a.Type()
	if t.Kind() != reflect.Struct {
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, prefix)
		}
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Anonymous { // an embedded table: its keys are the parent's
			diffKeys(prefix, a.Field(i), b.Field(i), out)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		if prefix == "" && slices.Contains(Reloaded, name) {
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			diffKeys(key, a.Field(i), b.Field(i), out)
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			*out = append(*out, key)
		}
	}
}
