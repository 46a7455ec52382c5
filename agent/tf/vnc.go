package tf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// TF's VNC config API (contrail-api, REST on :8082): plain JSON over HTTP.
// Objects are addressed by type ("bgp-router") and uuid; lists live at the plural
// path ("/bgp-routers"); references change through POST /ref-update.

// ErrNotFound is returned (wrapped) when the config API answers 404.
var ErrNotFound = errors.New("not found in TF config API")

// APIError is a non-2xx answer from the config API.
type APIError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("TF config API %s %s: HTTP %d: %s", e.Method, e.Path, e.Status, strings.TrimSpace(e.Body))
}

func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// VNC is a minimal client for the config API.
type VNC struct {
	base *url.URL
	hc   *http.Client
}

// NewVNC returns a client for endpoint (e.g. "http://10.0.0.1:8082"). hc may be nil.
func NewVNC(endpoint string, hc *http.Client) (*VNC, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("TF config API endpoint %q: want http://HOST:8082", endpoint)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	return &VNC{base: u, hc: hc}, nil
}

func (c *VNC) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("building %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("TF config API %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading TF config API %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return &APIError{Method: method, Path: path, Status: resp.StatusCode, Body: string(data)}
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding TF config API %s %s: %w", method, path, err)
		}
	}
	return nil
}

// FQNameToID resolves an fq_name to a uuid.
func (c *VNC) FQNameToID(ctx context.Context, typ string, fqName []string) (string, error) {
	var out struct {
		UUID string `json:"uuid"`
	}
	if err := c.do(ctx, http.MethodPost, "/fqname-to-id", nil, map[string]any{"type": typ, "fq_name": fqName}, &out); err != nil {
		return "", fmt.Errorf("resolving %s %s: %w", typ, strings.Join(fqName, ":"), err)
	}
	if out.UUID == "" {
		return "", fmt.Errorf("resolving %s %s: empty uuid", typ, strings.Join(fqName, ":"))
	}
	return out.UUID, nil
}

// Get reads one object into out (the object's body, unwrapped).
func (c *VNC) Get(ctx context.Context, typ, uuid string, out any) error {
	wrap := map[string]json.RawMessage{}
	if err := c.do(ctx, http.MethodGet, "/"+typ+"/"+uuid, nil, nil, &wrap); err != nil {
		return err
	}
	raw, ok := wrap[typ]
	if !ok {
		return fmt.Errorf("TF config API GET /%s/%s: answer lacks %q", typ, uuid, typ)
	}
	return json.Unmarshal(raw, out)
}

// List reads all objects of typ (detail=true), optionally under one parent uuid.
func (c *VNC) List(ctx context.Context, typ, parentUUID string, each func(raw json.RawMessage) error) error {
	q := url.Values{"detail": {"true"}}
	if parentUUID != "" {
		q.Set("parent_id", parentUUID)
	}
	var out map[string][]map[string]json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/"+typ+"s", q, nil, &out); err != nil {
		return err
	}
	for _, item := range out[typ+"s"] {
		raw, ok := item[typ]
		if !ok {
			return fmt.Errorf("TF config API GET /%ss: item lacks %q", typ, typ)
		}
		if err := each(raw); err != nil {
			return err
		}
	}
	return nil
}

// Create posts a new object; body is the object's content. Returns its uuid.
func (c *VNC) Create(ctx context.Context, typ string, body any) (string, error) {
	var out map[string]struct {
		UUID string `json:"uuid"`
	}
	if err := c.do(ctx, http.MethodPost, "/"+typ+"s", nil, map[string]any{typ: body}, &out); err != nil {
		return "", err
	}
	return out[typ].UUID, nil
}

// Update PUTs the given fields of an object.
func (c *VNC) Update(ctx context.Context, typ, uuid string, fields any) error {
	return c.do(ctx, http.MethodPut, "/"+typ+"/"+uuid, nil, map[string]any{typ: fields}, nil)
}

// Delete removes an object.
func (c *VNC) Delete(ctx context.Context, typ, uuid string) error {
	return c.do(ctx, http.MethodDelete, "/"+typ+"/"+uuid, nil, nil, nil)
}

// RefUpdate adds (or replaces the attribute of) or deletes a reference.
func (c *VNC) RefUpdate(ctx context.Context, typ, uuid, refType, refUUID string, add bool, attr any) error {
	op := "DELETE"
	if add {
		op = "ADD"
	}
	body := map[string]any{"type": typ, "uuid": uuid, "ref-type": refType, "ref-uuid": refUUID, "operation": op, "attr": attr}
	return c.do(ctx, http.MethodPost, "/ref-update", nil, body, nil)
}
