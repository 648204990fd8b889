package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// docs/http.md: "Every other status carries {"error": "..."}", 405 for another method than POST
// included. Those of net/http's router (405 for a known path with another method, 404 for an
// unknown path) were plain text ("Method Not Allowed"), which a client decoding the documented
// JSON could not read.
func TestRouterErrorsAreJSON(t *testing.T) {
	ts := startServer(t, nil)
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", InjectPath, 405, "POST"},
		{"PUT", InjectPath, 405, "POST"},
		{"POST", "/api/inject/v2", 404, ""},
		{"GET", "/", 404, ""},
	} {
		req, err := http.NewRequest(tc.method, ts.url+tc.path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body errorBody
		derr := json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || derr != nil || body.Error == "" ||
			resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s, body error %q (%v); want %d with {\"error\": ...}",
				tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), body.Error, derr, tc.status)
		}
		if tc.allow != "" && !strings.Contains(resp.Header.Get("Allow"), tc.allow) {
			t.Errorf("%s %s: Allow %q, want %s", tc.method, tc.path, resp.Header.Get("Allow"), tc.allow)
		}
	}
}
