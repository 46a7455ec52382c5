package underlay

import (
	"errors"
	"strings"
	"testing"
)

func TestOptionsValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
	err := Options{Iface: "", Timeout: -1, Retries: 11, RequestIP: "nope"}.Validate()
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"interface is empty", "negative", "retries 11", `"nope"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err %q lacks %q (every problem at once)", err, want)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("err %q spans lines", err)
	}
}
