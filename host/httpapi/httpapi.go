// Package httpapi serves wasmta's HTTP API (design.md §8): KumoMTA's POST /api/inject/v1, the
// queue admin routes (/api/admin/.../v1) and health probes. Each route lives in its own file and is registered on one mux in
// New; authentication and limits wrap the mux, so a new route gets them without effort.
//
// Security: on a loopback listen no token is needed (the config refuses a non-loopback listen
// without [http] token). With a token set, every request must carry
// "Authorization: Bearer <token>" (RFC 6750 §2.1) or gets 401; [http] inject_token is accepted
// on the inject route only. Tokens are compared in constant time. The liveness and readiness
// probes answer without a token.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/plugin"
)

// Receiver takes accepted messages: it must make them durable before returning nil
// (queue.Manager; the same one SMTP reception uses).
type Receiver interface {
	Submit(msgs []*message.Message, body []byte) error
}

// Policy runs the plugins' message hooks (plugin.Chain).
type Policy interface {
	MessageHook(ctx context.Context, hook string, m *plugin.Message) (plugin.Outcome, error)
	Active() bool
}

// SpaceGuard refuses work the spool has no room for: Room returns an error when n more bytes
// should not be written now.
type SpaceGuard interface {
	Room(n int64) error
}

// Options configure a Server. Zero durations and sizes take the defaults of host/config.
type Options struct {
	Listen      string // ip:port
	Token       string // required on every route when set
	InjectToken string // also accepted on the inject route when set

	MaxRequestSize    int64 // bytes of request body (after decompression too); more is 413
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration

	Hostname       string // right side of generated Message-IDs
	MaxMessageSize int64  // one generated message at most (the SMTP limit); more fails that recipient

	Receiver Receiver
	Policy   Policy       // nil: no plugins
	Guard    SpaceGuard   // nil: no disk-space check
	Admin    Admin        // nil: no queue admin routes (admin.go)
	Control  Control      // nil: no plugin reload/status routes
	Fleet    Fleet        // nil: not in a cluster (no [redis]); the cluster routes say so
	Ready    func() error // readiness: nil error when ready to take mail
	Signer   Signer       // nil: no DKIM signing
	Log      *logs.Logger
	Diag     *slog.Logger
	Now      func() time.Time
}

// Server is the HTTP API server.
type Server struct {
	opt  Options
	mux  *http.ServeMux
	srv  *http.Server
	l    net.Listener
	done chan struct{}
	// Hashes of the tokens: comparing fixed-size digests keeps the comparison constant-time
	// even in the token's length.
	token, injectToken *[sha256.Size]byte
	requests           RequestObserver // nil: requests are not counted (ObserveRequests)
}

// InjectPath is KumoMTA's injection route.
const InjectPath = "/api/inject/v1"

// New builds a server; nothing listens until Listen.
func New(opt Options) *Server {
	if opt.Diag == nil {
		opt.Diag = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.MaxRequestSize <= 0 {
		opt.MaxRequestSize = 2 << 20
	}
	if opt.MaxMessageSize <= 0 {
		opt.MaxMessageSize = 20 << 20
	}
	if opt.Hostname == "" {
		opt.Hostname = "localhost"
	}
	s := &Server{opt: opt, mux: http.NewServeMux(), done: make(chan struct{})}
	if opt.Token != "" {
		h := sha256.Sum256([]byte(opt.Token))
		s.token = &h
	}
	if opt.InjectToken != "" {
		h := sha256.Sum256([]byte(opt.InjectToken))
		s.injectToken = &h
	}
	s.mux.HandleFunc("POST "+InjectPath, s.inject)
	s.registerAdmin()
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: orDefault(opt.ReadHeaderTimeout, 10*time.Second),
		ReadTimeout:       orDefault(opt.ReadTimeout, time.Minute),
		WriteTimeout:      orDefault(opt.WriteTimeout, 2*time.Minute),
		IdleTimeout:       orDefault(opt.IdleTimeout, 2*time.Minute),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(opt.Diag.Handler(), slog.LevelDebug),
	}
	return s
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Listen binds the address, so a taken port fails start-up, not later.
func (s *Server) Listen() error {
	l, err := net.Listen("tcp", s.opt.Listen)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", s.opt.Listen, err)
	}
	s.l = l
	return nil
}

// Addr is the bound address (nil before Listen).
func (s *Server) Addr() net.Addr {
	if s.l == nil {
		return nil
	}
	return s.l.Addr()
}

// Serve answers requests in the background.
func (s *Server) Serve() {
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.opt.Diag.Error("http serve", "addr", s.l.Addr().String(), "err", err)
		}
	}()
}

// Shutdown stops accepting and waits for requests in progress (until ctx ends): an injection
// that is spooling finishes and gets its answer.
func (s *Server) Shutdown(ctx context.Context) {
	if s.l == nil {
		return
	}
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	<-s.done
}

// Handle adds a route (a net/http ServeMux pattern) behind the same authentication and limits:
// the admin token when one is set. Call it before Serve.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// ServeHTTP authenticates, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.requests != nil {
		s.observed(w, r)
		return
	}
	s.serve(w, r)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wasmta"`)
		writeError(w, http.StatusUnauthorized, "a valid bearer token is required")
		return
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		// No route: net/http's router answers 404 or 405 (with Allow) in plain text, and
		// every error of this API is {"error": ...} (docs/http.md).
		s.mux.ServeHTTP(&routerError{ResponseWriter: w}, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// routerError turns the router's plain-text 404 and 405 into the API's JSON error; anything
// else (a redirect to the clean path) passes unchanged.
type routerError struct {
	http.ResponseWriter
	replaced bool
}

func (e *routerError) WriteHeader(status int) {
	if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
		e.ResponseWriter.WriteHeader(status)
		return
	}
	e.replaced = true
	msg := "no such route"
	if status == http.StatusMethodNotAllowed {
		msg = "method not allowed (Allow: " + e.Header().Get("Allow") + ")"
	}
	writeError(e.ResponseWriter, status, msg)
}

func (e *routerError) Write(p []byte) (int, error) {
	if e.replaced {
		return len(p), nil
	}
	return e.ResponseWriter.Write(p)
}

func (s *Server) authorized(r *http.Request) bool {
	if isHealthPath(r.URL.Path) {
		return true
	}
	inject := r.URL.Path == InjectPath
	if s.token == nil && (s.injectToken == nil || !inject) {
		return true
	}
	got, ok := bearer(r)
	if !ok {
		return false
	}
	h := sha256.Sum256([]byte(got))
	if s.token != nil && subtle.ConstantTimeCompare(h[:], s.token[:]) == 1 {
		return true
	}
	return inject && s.injectToken != nil && subtle.ConstantTimeCompare(h[:], s.injectToken[:]) == 1
}

// bearer extracts the token of "Authorization: Bearer <token>"; the scheme is
// case-insensitive (RFC 9110 §11.1).
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// errorBody is every non-200 answer: {"error": "..."}.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
