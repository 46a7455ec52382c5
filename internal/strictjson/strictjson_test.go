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
	for in, want := range map[string]error{
		`{"a":1,"b":[2]}`:   nil,
		" \n{\"a\":1}\t\n ": nil,
		`{"a":1}]`:          ErrTrailingData,
		`{"a":1}}`:          ErrTrailingData,
		`{"a":1} {"a":2}`:   ErrTrailingData,
		`{"a":1} x`:         ErrTrailingData,
		`{"a":1} 7`:         ErrTrailingData,
		`{"a":1,"c":3}`:     errUnknown,
		`{"a":"1"}`:         errType,
		``:                  errEOF,
		`{"a":1`:            errEOF,
		`[{"a":1}]`:         errType,
	} {
		var d doc
		err := Unmarshal([]byte(in), &d)
		switch {
		case want == nil && err != nil:
			t.Errorf("%q: %v", in, err)
		case want == ErrTrailingData && !errors.Is(err, ErrTrailingData):
			t.Errorf("%q: got %v, want %v", in, err, want)
		case want != nil && want != ErrTrailingData && (err == nil || errors.Is(err, ErrTrailingData)):
			t.Errorf("%q: got %v, want a decoding error", in, err)
		}
	}
	var d doc
	if err := Unmarshal([]byte(`{"a":1,"b":[2,3]}`), &d); err != nil || d.A != 1 || len(d.B) != 2 {
		t.Fatalf("decoded %+v, %v", d, err)
	}
}

// Stand-ins for the decoder's own errors, which carry no sentinel.
var (
	errUnknown = errors.New("unknown field")
	errType    = errors.New("type mismatch")
	errEOF     = errors.New("unexpected end")
)
