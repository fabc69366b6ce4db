package tasks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// BenchmarkValidateData measures the I-JSON checks every Enqueue makes of
// its data, on a small object (as most tasks carry) and a large one.
func BenchmarkValidateData(b *testing.B) {
	large := `{"items":[` + strings.Repeat(`{"id":1,"name":"x","tags":["a","b"]},`, 1000) + `{}],"n":1}`
	for _, bc := range []struct{ name, data string }{
		{"small", `{"At":123456789}`},
		{"large", large},
	} {
		b.Run(bc.name, func(b *testing.B) {
			data := []byte(bc.data)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := validateData(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestCheckStructure(t *testing.T) {
	t.Parallel()
	many := func(dup bool) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range 40 {
			fmt.Fprintf(&b, `"m%d":%d,`, i, i)
		}
		if dup {
			b.WriteString(`"m7":0,`)
		}
		b.WriteString(`"last":{}}`)
		return b.String()
	}
	for _, tc := range []struct {
		data string
		ok   bool
	}{
		{`1`, true},
		{`"a"`, true},
		{`{}`, true},
		{`{"a":1,"b":2}`, true},
		{`{"a":1,"a":2}`, false},
		{`{"a":{"a":1},"b":{"a":2}}`, true}, // the same name in two objects
		{`[{"a":1},{"a":2}]`, true},         // and in two array elements
		{`{"a":[1,{"b":2}],"b":3}`, true},   // a name after a nested value
		{`{"a":[1,{"b":2}],"a":3}`, false},  // the duplicate after it
		{`{"\u0061":1,"a":2}`, false},       // equal once unescaped
		{`{"a\"b":1,"a\"b":2}`, false},      // an escaped quote in a name
		{`{"a\\":1,"a":2}`, true},           // a backslash, then the end
		{`{"x":"{\"a\":1,\"a\":2}"}`, true}, // braces and names inside a value
		{`{"a":"b","b":"a",  "c" : "," , "c":1}`, false},
		{many(false), true},
		{many(true), false}, // past smallObject: the map
		{strings.Repeat("[", 63) + strings.Repeat("]", 63), true},
		{strings.Repeat("[", 64) + strings.Repeat("]", 64), false},
	} {
		if !json.Valid([]byte(tc.data)) {
			t.Fatalf("test data %q is not JSON", tc.data)
		}
		if err := checkStructure([]byte(tc.data)); (err == nil) != tc.ok {
			t.Errorf("checkStructure(%.60q) = %v, want ok %v", tc.data, err, tc.ok)
		}
		if got, want := checkStructure([]byte(tc.data)) == nil, referenceStructure([]byte(tc.data)); got != want {
			t.Errorf("checkStructure(%.60q) ok %v, the reference says %v", tc.data, got, want)
		}
	}
}

// FuzzCheckStructure compares checkStructure with referenceStructure, a
// plain decoder walk, on every input that validateData passes to it: valid
// JSON in valid UTF-8.
func FuzzCheckStructure(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `[{"a":{"b":[1,"x"]}},{"a":2}]`, `{"\u0061":1,"a":2}`, `{"a\"":[{},{"a\"":1}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) || !utf8.Valid(data) {
			return
		}
		if got, want := checkStructure(data) == nil, referenceStructure(data); got != want {
			t.Errorf("checkStructure(%q) ok %v, the reference says %v", data, got, want)
		}
	})
}

// referenceStructure reports what checkStructure checks, the slow and
// obvious way: walking the tokens of a decoder.
func referenceStructure(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type object struct {
		names    map[string]bool
		wantName bool
	}
	var stack []*object
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		var top *object
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.wantName && tok != json.Delim('}') {
			name := tok.(string)
			if top.names[name] {
				return false
			}
			top.names[name], top.wantName = true, false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) == maxDataDepth {
				return false
			}
			if tok == json.Delim('{') {
				stack = append(stack, &object{names: map[string]bool{}, wantName: true})
			} else {
				stack = append(stack, nil)
			}
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1] != nil {
			stack[len(stack)-1].wantName = true
		}
	}
}
