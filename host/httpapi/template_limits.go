package httpapi

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unsafe"

	"github.com/nikolalohinski/gonja/v2/builtins"
	controlstructures "github.com/nikolalohinski/gonja/v2/builtins/control_structures"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/nodes"
	"github.com/nikolalohinski/gonja/v2/tokens"
)

// A template must not be able to stop the relay. The output cap (maxRender) bounds what a
// template writes, but gonja builds values before writing them, and two things in it are
// fatal to the whole process rather than to one render: a goroutine stack overflow (Go cannot
// recover from it) and an allocation the machine cannot satisfy. So:
//   - no recursion: macros, call blocks and blocks (self.name() calls a block from inside
//     itself) are not parsed, recursive for loops are refused, and methods that could make a
//     list or dict contain itself (append, update, setdefault) are not offered;
//   - no unbounded value: every +, ~ and * checks the size its result would have before it is
//     built, every filter and method result is checked after, and the filters, methods and
//     functions whose arguments size their output (center, indent, format, wordwrap, ljust,
//     zfill, lipsum, …) are left out.
//
// Loops over range() are bounded (maxRangeItems); CPU time is not (docs/http.md).
const (
	maxTemplateValue = 32 << 20 // bytes in one string value
	maxTemplateItems = 1 << 20  // items in one list or dict value
)

var errValueTooLarge = fmt.Errorf("template value larger than %d bytes or %d items", maxTemplateValue, maxTemplateItems)

// safeFilters are gonja's filters whose output size their input bounds; replace and join are
// checked before they run.
var safeFilters = []string{"abs", "attr", "capitalize", "default", "d", "dictsort", "e", "escape",
	"filesizeformat", "first", "float", "forceescape", "groupby", "int", "join", "items", "last",
	"length", "count", "list", "lower", "map", "max", "min", "random", "rejectattr", "reject",
	"replace", "reverse", "round", "safe", "selectattr", "select", "sort", "string", "striptags",
	"sum", "title", "trim", "truncate", "unique", "upper", "urlencode", "wordcount", "xmlattr"}

var safeStrMethods = []string{"capitalize", "casefold", "count", "endswith", "find", "isalnum",
	"isalpha", "isascii", "isdecimal", "isdigit", "islower", "isnumeric", "isprintable", "isspace",
	"istitle", "isupper", "join", "lower", "lstrip", "partition", "removeprefix", "removesuffix",
	"replace", "rfind", "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith",
	"strip", "swapcase", "title", "upper"}

// guardFilter is the filter the compiler puts in front of a +, ~ or * (guardOperators).
const guardFilter = "__wasmta_operand_guard"

func guardedFilters() *exec.FilterSet {
	m := map[string]exec.FilterFunction{guardFilter: operandGuard}
	for _, name := range safeFilters {
		f, ok := builtins.Filters.Get(name)
		if !ok {
			continue
		}
		name := name
		m[name] = func(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
			if err := preCheck(name, in, params.Args); err != nil {
				return exec.AsValue(err)
			}
			return checked(f(e, in, params))
		}
	}
	return exec.NewFilterSet(m)
}

func guardedMethods() exec.Methods {
	str := map[string]exec.Method[string]{}
	for _, name := range safeStrMethods {
		f, ok := builtins.Methods.Str.Get(name)
		if !ok {
			continue
		}
		name := name
		str[name] = func(self string, sv *exec.Value, args *exec.VarArgs) (any, error) {
			if err := preCheck(name, sv, args.Args); err != nil {
				return nil, err
			}
			out, err := f(self, sv, args)
			if err == nil && tooLarge(exec.AsValue(out)) {
				return nil, errValueTooLarge
			}
			return out, err
		}
	}
	list := map[string]exec.Method[[]any]{}
	for _, name := range []string{"reverse", "copy"} {
		if f, ok := builtins.Methods.List.Get(name); ok {
			list[name] = f
		}
	}
	dict := map[string]exec.Method[map[string]any]{}
	for _, name := range []string{"keys", "values", "items", "get", "copy", "pop", "clear"} {
		if f, ok := builtins.Methods.Dict.Get(name); ok {
			dict[name] = f
		}
	}
	return exec.Methods{
		Bool: builtins.Methods.Bool, Int: builtins.Methods.Int, Float: builtins.Methods.Float,
		Str: exec.NewMethodSet(str), List: exec.NewMethodSet(list), Dict: exec.NewMethodSet(dict),
	}
}

// preCheck refuses a join or replace whose result would be too large, before it is built.
func preCheck(name string, in *exec.Value, args []*exec.Value) error {
	switch name {
	case "join":
		// filter: list|join(sep); method: sep.join(list)
		list, sep := in, ""
		if len(args) > 0 {
			if in.IsList() || in.IsDict() {
				sep = args[0].String()
			} else {
				list, sep = args[0], in.String()
			}
		}
		if list.IsList() && int64(list.Len())*int64(len(sep)) > maxTemplateValue {
			return errValueTooLarge
		}
	case "replace":
		if len(args) >= 2 && in.IsString() {
			s, old, repl := in.String(), args[0].String(), args[1].String()
			n := int64(len(s) + 1) // an empty old matches between every character
			if old != "" {
				n = int64(strings.Count(s, old))
			}
			if int64(len(s))+n*int64(len(repl)) > maxTemplateValue {
				return errValueTooLarge
			}
		}
	}
	return nil
}

func tooLarge(v *exec.Value) bool {
	switch {
	case v == nil || v.IsError():
		return false
	case v.IsString():
		return len(v.String()) > maxTemplateValue
	case v.IsList(), v.IsDict():
		return v.Len() > maxTemplateItems
	}
	return false
}

func checked(v *exec.Value) *exec.Value {
	if tooLarge(v) {
		return exec.AsValue(errValueTooLarge)
	}
	return v
}

// operandGuard receives the left operand of a +, ~ or * and, as arguments, the operator and
// the right operand; it passes the left operand through unless the result would be too large.
// gonja's evaluator then computes the operation itself.
func operandGuard(_ *exec.Evaluator, left *exec.Value, params *exec.VarArgs) *exec.Value {
	if left.IsError() || len(params.Args) != 2 {
		return left
	}
	op, right := params.Args[0].String(), params.Args[1]
	var size int64
	switch op {
	case "*":
		if left.IsString() && !right.IsFloat() && right.IsInteger() {
			size = int64(len(left.String())) * int64(max(right.Integer(), 0))
		}
	case "~":
		size = int64(len(left.String())) + int64(len(right.String()))
	case "+":
		switch {
		case left.IsList() && right.IsList():
			if left.Len()+right.Len() > maxTemplateItems {
				return exec.AsValue(errValueTooLarge)
			}
		case left.IsString() || right.IsString():
			size = int64(len(left.String())) + int64(len(right.String()))
		}
	}
	if size > maxTemplateValue {
		return exec.AsValue(errValueTooLarge)
	}
	return left
}

// guardTemplate checks a parsed template and rewrites its +, ~ and * operations so the
// operands are checked (operandGuard) before the evaluator combines them.
func guardTemplate(root *nodes.Template) error {
	seen := map[uintptr]bool{}
	var walk func(v reflect.Value) error
	walk = func(v reflect.Value) error {
		switch v.Kind() {
		case reflect.Interface:
			if !v.IsNil() {
				return walk(v.Elem())
			}
		case reflect.Pointer:
			if v.IsNil() || seen[v.Pointer()] {
				return nil
			}
			seen[v.Pointer()] = true
			switch n := v.Interface().(type) {
			case *tokens.Token:
				return nil
			case *controlstructures.ForControlStructure:
				if n.Recursive {
					return errors.New("recursive for loops are not allowed in templates")
				}
			case *nodes.BinaryExpression:
				if err := walk(v.Elem()); err != nil { // operands first: the rewrite adds nodes
					return err
				}
				if op := n.Operator.Token.Val; op == "+" || op == "~" || op == "*" {
					tok := n.Operator.Token
					n.Left = &nodes.FilteredExpression{Expression: n.Left, Filters: []*nodes.FilterCall{{
						Token: tok, Name: guardFilter,
						Args: []nodes.Expression{&nodes.String{Location: tok, Val: op}, n.Right},
					}}}
				}
				return nil
			}
			return walk(v.Elem())
		case reflect.Struct:
			for i := range v.NumField() {
				f := v.Field(i)
				if !f.CanInterface() {
					// gonja's control structures keep their expressions in unexported
					// fields ({% set %}, {% if %}, {% with %}, …); the walk must reach them.
					if !f.CanAddr() {
						continue
					}
					f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
				}
				if err := walk(f); err != nil {
					return err
				}
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				if err := walk(v.Index(i)); err != nil {
					return err
				}
			}
		case reflect.Map:
			for _, k := range v.MapKeys() {
				if err := walk(v.MapIndex(k)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(reflect.ValueOf(root))
}
