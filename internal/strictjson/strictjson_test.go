package strictjson

import (
	"errors"
	"testing"
)

type doc struct {
	A int   `json:"a"`
	B []int `json:"b"`
}

func TestUnmarshal(t *testing.T) {
	var d doc
	if err := Unmarshal([]byte(" \n{\"a\":1,\"b\":[2,3]}\t\n "), &d); err != nil || d.A != 1 || len(d.B) != 2 {
		t.Fatalf("decoded %+v, %v", d, err)
	}
	for _, in := range []string{`{"a":1}]`, `{"a":1}}`, `{"a":1} {"a":2}`, `{"a":1} x`, `{"a":1} 7`} {
		if err := Unmarshal([]byte(in), &doc{}); !errors.Is(err, ErrTrailingData) {
			t.Errorf("%q: got %v, want %v", in, err, ErrTrailingData)
		}
	}
	// Unknown field, wrong type, truncated, empty: the decoder's own errors.
	for _, in := range []string{`{"a":1,"c":3}`, `{"a":"1"}`, `[{"a":1}]`, `{"a":1`, ``} {
		if err := Unmarshal([]byte(in), &doc{}); err == nil || errors.Is(err, ErrTrailingData) {
			t.Errorf("%q: got %v, want a decoding error", in, err)
		}
	}
}
