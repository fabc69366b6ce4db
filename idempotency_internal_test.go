package tasks

import (
	"testing"
	"time"
)

// TestAppendCanonical: the canonical text of a JSON value, which digests of
// stored tasks hash, does not change.
func TestAppendCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`null`, `null`},
		{` true `, `true`},
		{`1.0`, `1.0`},
		{`-0`, `-0`},
		{`1E+2`, `1E+2`},
		{`12345678901234567890`, `12345678901234567890`},
		{`"\u00e9\/\"\\\n\u001f\u007f<&>"`, "\"é/\\\"\\\\\\u000a\\u001f\x7f<&>\""},
		{`"😀"`, `"😀"`},
		{`"\ud83d\ude00"`, `"😀"`},
		{`[ 1 , [ ] , { } ]`, `[1,[],{}]`},
		{`{"b": 1, "a": {"d": [true], "c": null}, "\u0041": 0}`, `{"A":0,"a":{"c":null,"d":[true]},"b":1}`},
	} {
		v, err := decodeJSON([]byte(tc.in))
		if err != nil {
			t.Fatalf("decode %s: %v", tc.in, err)
		}
		if got := string(appendCanonical(nil, v)); got != tc.want {
			t.Errorf("canonical %s: got %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestRequestDigest: a request's digest is the same in every form of the
// same request and is stored, so its value is pinned.
func TestRequestDigest(t *testing.T) {
	digest := func(eventType string, runAt time.Time, data string) string {
		t.Helper()
		d, err := requestDigest(eventType, runAt, []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	at := time.Date(2027, 6, 1, 9, 30, 0, 123456789, time.UTC)
	// The SHA-256 of ["x","2027-06-01T09:30:00.123456Z",{"a":1,"b":"é"}].
	const want = "c43c8c4f4446109cb80dd0eba7b851088873edf6e75213affcb0d704678e729f"
	for _, same := range []string{
		digest("x", at, `{"a":1,"b":"é"}`),
		digest("x", at.Truncate(time.Microsecond).In(time.FixedZone("", 19800)), "{ \"b\": \"\\u00e9\",\n \"a\": 1 }"),
	} {
		if same != want {
			t.Errorf("got digest %s, want %s", same, want)
		}
	}
	for _, other := range []string{
		digest("y", at, `{"a":1,"b":"é"}`),
		digest("x", at.Add(time.Microsecond), `{"a":1,"b":"é"}`),
		digest("x", time.Time{}, `{"a":1,"b":"é"}`),
		digest("x", at, `{"a":1.0,"b":"é"}`),
	} {
		if other == want {
			t.Errorf("another request has the digest %s", want)
		}
	}
	if null, err := requestDigest("x", time.Time{}, nil); err != nil || null != digest("x", time.Time{}, "null") {
		t.Errorf("nil data: got digest %s, %v; want that of null", null, err)
	}
}
