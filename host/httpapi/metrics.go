package httpapi

import "net/http"

// MetricsPath is where the Prometheus metrics are served (design.md §8).
const MetricsPath = "/metrics"

// ServeMetrics serves h at GET /metrics behind the server's authentication: with [http] token
// set, the bearer token is required (the inject token is not enough). Call it before Serve.
func (s *Server) ServeMetrics(h http.Handler) { s.Handle("GET "+MetricsPath, h) }

// RequestObserver is told about every answered request: the route (the pattern it matched,
// such as "POST /api/inject/v1", or "" when none did) and the status code.
type RequestObserver func(route string, code int)

// ObserveRequests makes o see every answered request. Call it before Serve.
func (s *Server) ObserveRequests(o RequestObserver) { s.requests = o }

// observed answers r and tells the observer its route and status.
func (s *Server) observed(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	s.serve(rec, r)
	route := r.Pattern // set by the mux when it routed the request
	if route == "" {
		_, route = s.mux.Handler(r) // refused before routing (401): still the route it asked for
	}
	code := rec.code
	if code == 0 {
		code = http.StatusOK // nothing written: net/http answers 200
	}
	s.requests(route, code)
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
