package tf

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNewVNCRejectsBadEndpoints(t *testing.T) {
	for _, e := range []string{"", "10.0.0.1:8082", "ftp://x", "http://"} {
		if _, err := NewVNC(e, nil); err == nil {
			t.Errorf("%q accepted", e)
		}
	}
}

func TestVNCErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/bgp-router/missing":
			http.Error(w, "no such object", http.StatusNotFound)
		case "/bgp-router/wrapped":
			w.Write([]byte(`{"routing-instance": {}}`))
		default:
			w.Write([]byte(`not json`))
		}
	}))
	defer srv.Close()
	c, err := NewVNC(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var r BGPRouter
	err = c.Get(ctx, typeBGPRouter, "missing", &r)
	var apiErr *APIError
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &apiErr) || !strings.Contains(err.Error(), "no such object") {
		t.Fatalf("404: %v", err)
	}
	if err := c.Get(ctx, typeBGPRouter, "wrapped", &r); err == nil || !strings.Contains(err.Error(), "lacks") {
		t.Fatalf("wrong wrapper: %v", err)
	}
	if err := c.Get(ctx, typeBGPRouter, "garbage", &r); err == nil || !strings.Contains(err.Error(), "decoding") {
		t.Fatalf("bad json: %v", err)
	}
}
