package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// apiClient talks to a running server's HTTP API ([http] listen) for the commands an operator
// or an injector runs: `wasmta inject`, `wasmta queue …`.
type apiClient struct {
	base, token string
	http        *http.Client
}

// apiFlags adds --api and --token to cmd; the defaults come from WASMTA_API and WASMTA_TOKEN,
// then the embedded default listen address.
func apiFlags(cmd *cobra.Command) *apiClient {
	c := &apiClient{http: &http.Client{Timeout: 2 * time.Minute}}
	def := os.Getenv("WASMTA_API")
	if def == "" {
		def = "http://127.0.0.1:8025"
	}
	cmd.Flags().StringVar(&c.base, "api", def, "the server's HTTP API (env WASMTA_API)")
	cmd.Flags().StringVar(&c.token, "token", os.Getenv("WASMTA_TOKEN"), "bearer token, when the server has [http] token (env WASMTA_TOKEN)")
	return c
}

// call sends in (JSON, or nothing when nil) and decodes a 2xx answer into out; any other
// status is an error carrying the server's message.
func (c *apiClient) call(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, strings.TrimRight(c.base, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w (is the server running with [http] listen there?)", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, e.Error)
		}
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// printJSON writes v indented, for --json output that scripts read.
func printJSON(w io.Writer, v any) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(v)
}
