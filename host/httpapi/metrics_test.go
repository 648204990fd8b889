package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// /metrics is served behind the token like every route, and every answered request reaches
// the observer with the route it asked for and its status, refused ones included.
func TestMetricsRouteAndRequestObserver(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	s := New(Options{Listen: "127.0.0.1:0", Token: "s3cret", InjectToken: "inj"})
	s.ObserveRequests(func(route string, code int) {
		mu.Lock()
		seen[fmt.Sprintf("%s %d", route, code)]++
		mu.Unlock()
	})
	s.ServeMetrics(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "wasmta_up 1") }))
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	s.Serve()
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	base := "http://" + s.Addr().String()
	ts := &testServer{t: t}
	get := func(path, token string) int {
		req, _ := http.NewRequest("GET", base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		code, _ := ts.do(req)
		return code
	}
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{MetricsPath, "", 401},
		{MetricsPath, "inj", 401}, // the inject token opens the inject route only
		{MetricsPath, "s3cret", 200},
		{"/nowhere", "s3cret", 404},
	} {
		if got := get(c.path, c.token); got != c.want {
			t.Errorf("GET %s with %q: %d, want %d", c.path, c.token, got, c.want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]int{"GET /metrics 401": 2, "GET /metrics 200": 1, " 404": 1}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("observed %v, want %v", seen, want)
	}
}
