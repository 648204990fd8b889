package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// The commands that talk to a running relay's HTTP API ([http] listen): `wasmta inject`,
// `wasmta queue …`.

const defaultAPI = "http://127.0.0.1:8025"

// apiClient calls the HTTP API with the bearer token, if any.
type apiClient struct {
	base  string
	token string
	hc    *http.Client
	fs    *pflag.FlagSet // where --api and --token are, to tell a flag given from its default
}

// do sends body (JSON, when not nil) and decodes a 2xx answer into out; any other answer
// becomes an error carrying the server's {"error": ...} text.
func (c *apiClient) do(method, path string, q url.Values, body, out any) error {
	c.fromEnv()
	base := c.base
	if !strings.Contains(base, "://") {
		base = "http://" + base // --api 127.0.0.1:8025, as [http] listen is written
	}
	u := strings.TrimRight(base, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w (is the relay running with [http] listen there? see --api)", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = b
		return nil
	}
	return json.Unmarshal(b, out)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newAPIClient() *apiClient { return &apiClient{hc: &http.Client{Timeout: 5 * time.Minute}} }

// flags adds --api and --token. Their defaults come from WASMTA_API and WASMTA_TOKEN when the
// command runs (fromEnv), not as the flags' defaults: a flag's default is printed by --help and
// written into the man pages (`make install` runs `wasmta man`), and the token is a secret.
func (c *apiClient) flags(f *pflag.FlagSet) {
	c.fs = f
	f.StringVar(&c.base, "api", defaultAPI, "the relay's HTTP API base URL (env WASMTA_API)")
	f.StringVar(&c.token, "token", "", "the [http] token (env WASMTA_TOKEN)")
}

// fromEnv takes --api and --token from the environment when they were not given.
func (c *apiClient) fromEnv() {
	if c.fs == nil {
		return
	}
	if !c.fs.Changed("api") {
		c.base = envOr("WASMTA_API", defaultAPI)
	}
	if !c.fs.Changed("token") {
		c.token = os.Getenv("WASMTA_TOKEN")
	}
}

func printJSON(w io.Writer, raw []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		_, err = w.Write(raw)
		return err
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}
