package harmony

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// jv is a JSON value that keeps object keys in document order (harmony
// renders properties in the order the schema lists them).
type jv struct {
	kind byte // 'o' object, 'a' array, 's' string, 'n' number, 'b' bool, 'z' null
	str  string
	num  json.Number
	b    bool
	arr  []*jv
	keys []string
	vals map[string]*jv
}

func parseJSON(raw []byte) (*jv, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (*jv, error) {
	t, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '{':
			v := &jv{kind: 'o', vals: map[string]*jv{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				val, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				if _, dup := v.vals[k]; !dup {
					v.keys = append(v.keys, k)
				}
				v.vals[k] = val
			}
			_, err := dec.Token()
			return v, err
		case '[':
			v := &jv{kind: 'a'}
			for dec.More() {
				val, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				v.arr = append(v.arr, val)
			}
			_, err := dec.Token()
			return v, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case string:
		return &jv{kind: 's', str: t}, nil
	case json.Number:
		return &jv{kind: 'n', num: t}, nil
	case bool:
		return &jv{kind: 'b', b: t}, nil
	case nil:
		return &jv{kind: 'z'}, nil
	}
	return nil, fmt.Errorf("unexpected token %v", t)
}

// get is v[key] for an object, nil otherwise.
func (v *jv) get(key string) *jv {
	if v == nil || v.kind != 'o' {
		return nil
	}
	return v.vals[key]
}

// asStr is the string value and whether v is a string.
func (v *jv) asStr() (string, bool) {
	if v == nil || v.kind != 's' {
		return "", false
	}
	return v.str, true
}

func (v *jv) isTrue() bool { return v != nil && v.kind == 'b' && v.b }

// String is the compact JSON text, formatted as serde_json prints a
// value (harmony writes non-string defaults that way).
func (v *jv) String() string {
	var b strings.Builder
	v.write(&b)
	return b.String()
}

func (v *jv) write(b *strings.Builder) {
	switch v.kind {
	case 'o':
		b.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, k)
			b.WriteByte(':')
			v.vals[k].write(b)
		}
		b.WriteByte('}')
	case 'a':
		b.WriteByte('[')
		for i, e := range v.arr {
			if i > 0 {
				b.WriteByte(',')
			}
			e.write(b)
		}
		b.WriteByte(']')
	case 's':
		writeJSONString(b, v.str)
	case 'n':
		b.WriteString(formatNumber(v.num))
	case 'b':
		b.WriteString(strconv.FormatBool(v.b))
	default:
		b.WriteString("null")
	}
}

// writeJSONString escapes like serde_json: \" \\ \b \f \n \r \t, other
// control characters as \u00xx, everything else verbatim.
func writeJSONString(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&15])
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}

// formatNumber prints a JSON number as serde_json does: integers that fit
// 64 bits as integers, everything else as the shortest f64 (ryu style:
// "1.5", "100.0", "1e21", "1.5e-7").
func formatNumber(n json.Number) string {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return strconv.FormatInt(i, 10)
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return strconv.FormatUint(u, 10)
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "null"
	}
	if f == 0 {
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	exp := int(math.Floor(math.Log10(math.Abs(f))))
	if exp < -5 || exp >= 16 {
		e := strconv.FormatFloat(f, 'e', -1, 64) // 1.5e-07, 1e+21
		mant, ex, _ := strings.Cut(e, "e")
		x, _ := strconv.Atoi(ex)
		return mant + "e" + strconv.Itoa(x)
	}
	out := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(out, ".") {
		out += ".0"
	}
	return out
}

func isEnum(v *jv) bool {
	e := v.get("enum")
	return e != nil && e.kind == 'a' && len(e.arr) > 0
}

// defaultText renders a default value: a string as "s" (as s when the
// schema is an enum), anything else as compact JSON.
func defaultText(schema, def *jv) string {
	if s, ok := def.asStr(); ok {
		if isEnum(schema) {
			return s
		}
		return `"` + s + `"`
	}
	return def.String()
}

func withNull(schema *jv, ts string) string {
	if schema.get("nullable").isTrue() && !strings.Contains(ts, "null") {
		return ts + " | null"
	}
	return ts
}

// schemaToTS renders a JSON Schema as harmony's TypeScript-like type
// (json_schema_to_typescript in harmony's encoding.rs), quirks included:
// an object's own description is a comment line before its "{", nested
// fields are indented four spaces, a oneOf is a multi-line " | " union.
func schemaToTS(s *jv, indent string) string {
	if one := s.get("oneOf"); one != nil && one.kind == 'a' {
		var b strings.Builder
		for i, variant := range one.arr {
			if i > 0 {
				b.WriteByte('\n')
				b.WriteString(indent + " | ")
			} else {
				b.WriteString("\n" + indent + " | ")
			}
			b.WriteString(withNull(variant, schemaToTS(variant, indent+"   ")))
			var trailing []string
			if d, ok := variant.get("description").asStr(); ok {
				trailing = append(trailing, d)
			}
			if def := variant.get("default"); def != nil {
				trailing = append(trailing, "default: "+defaultText(variant, def))
			}
			if len(trailing) > 0 {
				b.WriteString(" // " + strings.Join(trailing, " "))
			}
		}
		return b.String()
	}
	typ := s.get("type")
	if typ != nil && typ.kind == 'a' {
		var ts []string
		for _, t := range typ.arr {
			if name, ok := t.asStr(); ok {
				if name == "integer" {
					name = "number"
				}
				ts = append(ts, name)
			}
		}
		if len(ts) > 0 {
			return strings.Join(ts, " | ")
		}
	}
	name, ok := typ.asStr()
	if !ok {
		return "any"
	}
	switch name {
	case "object":
		return objectToTS(s, indent)
	case "string":
		if e := s.get("enum"); e != nil && e.kind == 'a' {
			var vals []string
			for _, v := range e.arr {
				if str, ok := v.asStr(); ok {
					vals = append(vals, `"`+str+`"`)
				}
			}
			if len(vals) > 0 {
				return strings.Join(vals, " | ")
			}
		}
		return "string"
	case "number", "integer":
		return "number"
	case "boolean":
		return "boolean"
	case "array":
		if items := s.get("items"); items != nil {
			return schemaToTS(items, indent) + "[]"
		}
		return "Array<any>"
	}
	return "any"
}

func objectToTS(s *jv, indent string) string {
	var b strings.Builder
	if d, ok := s.get("description").asStr(); ok {
		b.WriteString(indent + "// " + d + "\n")
	}
	b.WriteString("{\n")
	props := s.get("properties")
	if props != nil && props.kind == 'o' {
		required := map[string]bool{}
		if req := s.get("required"); req != nil && req.kind == 'a' {
			for _, r := range req.arr {
				if name, ok := r.asStr(); ok {
					required[name] = true
				}
			}
		}
		for _, key := range props.keys {
			val := props.vals[key]
			opt := "?"
			if required[key] {
				opt = ""
			}
			if title, ok := val.get("title").asStr(); ok {
				b.WriteString(indent + "// " + title + "\n" + indent + "//\n")
			}
			one := val.get("oneOf")
			if one == nil {
				if d, ok := val.get("description").asStr(); ok {
					b.WriteString(indent + "// " + d + "\n")
				}
			}
			if ex := val.get("examples"); ex != nil && ex.kind == 'a' && len(ex.arr) > 0 {
				b.WriteString(indent + "// Examples:\n")
				for _, e := range ex.arr {
					if str, ok := e.asStr(); ok {
						b.WriteString(indent + "// - \"" + str + "\"\n")
					}
				}
			}
			if one != nil && one.kind == 'a' {
				propDesc, hasDesc := val.get("description").asStr()
				skip := false
				if hasDesc && len(one.arr) > 0 {
					if vd, ok := one.arr[0].get("description").asStr(); ok && vd == propDesc {
						skip = true
					}
				}
				above := false
				if hasDesc && !skip {
					b.WriteString(indent + "// " + propDesc + "\n")
					above = true
				}
				if def := val.get("default"); def != nil {
					b.WriteString(indent + "// default: " + defaultText(val, def) + "\n")
				}
				b.WriteString(indent + key + opt + ":\n")
				for i, variant := range one.arr {
					b.WriteString(indent + " | ")
					b.WriteString(withNull(variant, schemaToTS(variant, indent+"   ")))
					var trailing []string
					if !(i == 0 && above) {
						if d, ok := variant.get("description").asStr(); ok && !(hasDesc && d == propDesc) {
							trailing = append(trailing, d)
						}
					}
					if def := variant.get("default"); def != nil {
						trailing = append(trailing, "default: "+defaultText(variant, def))
					}
					if len(trailing) > 0 {
						b.WriteString(" // " + strings.Join(trailing, " "))
					}
					b.WriteByte('\n')
				}
				b.WriteString(indent + ",\n")
				continue
			}
			b.WriteString(indent + key + opt + ": ")
			b.WriteString(withNull(val, schemaToTS(val, indent+"    ")))
			b.WriteByte(',')
			if one == nil {
				if def := val.get("default"); def != nil {
					b.WriteString(" // default: " + defaultText(val, def))
				}
			}
			b.WriteByte('\n')
		}
	}
	b.WriteString(indent + "}")
	return b.String()
}
