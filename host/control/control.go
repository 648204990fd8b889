// Package control is the client side of the server's local control socket and the wire types
// both sides speak: one line of JSON in (Request), one JSON object out (Response). `wasmta
// plugin reload` and `wasmta plugin status` use it; host/app serves the same types. It depends
// on neither host/app nor the WebAssembly runtime, so a client carries none of the server.
package control

import (
	"encoding/json"
	"net"
	"time"
)

// Commands a Request may carry.
const (
	CmdReload = "reload" // re-read the config and reload changed plugins
	CmdStatus = "status" // report plugins, queue and spool
)

// MaxRequestSize bounds a request line: a request is a few dozen bytes, and the server reads
// no further, so a client that writes without a newline (a wrong file piped into the socket)
// gets its "bad request" at once instead of being held in memory until it stops.
const MaxRequestSize = 64 << 10

// Request is one line of JSON on the control socket, at most MaxRequestSize bytes.
type Request struct {
	Cmd string `json:"cmd"` // CmdReload or CmdStatus
}

// Response answers a Request.
type Response struct {
	OK      bool           `json:"ok"`
	Error   string         `json:"error,omitempty"`
	Results []ReloadResult `json:"results,omitempty"`
	Plugins []PluginStatus `json:"plugins"`
	Queue   QueueCounts    `json:"queue"`
	Spool   SpoolCounts    `json:"spool"`
}

// ReloadResult is what one reload did to one plugin.
type ReloadResult struct {
	Plugin     string `json:"plugin"`
	Path       string `json:"path"`
	Generation string `json:"generation"`         // serving after the reload
	Previous   string `json:"previous,omitempty"` // serving before, when it changed
	Changed    bool   `json:"changed"`            // a new generation serves
	Removed    bool   `json:"removed,omitempty"`  // no longer configured
	Error      string `json:"error,omitempty"`    // the new version was refused; the old one serves
}

// PluginStatus is one plugin's serving generation and reload history. It has the fields of
// host/plugin's Status, which the server converts to it (a conversion the compiler refuses as
// soon as the two differ), without importing the plugin host and its runtime.
type PluginStatus struct {
	Name        string    `json:"name"`
	Path        string    `json:"path"`
	Generation  string    `json:"generation"`
	LoadedAt    time.Time `json:"loaded_at"`
	Hooks       []string  `json:"hooks"`
	Reloads     int       `json:"reloads"`
	Failures    int       `json:"reload_failures"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// SpoolCounts are the spool's free-space figures (spool.min_free).
type SpoolCounts struct {
	FreeBytes     int64  `json:"free_bytes"`
	MinFreeBytes  int64  `json:"min_free_bytes"`
	BelowReserve  bool   `json:"below_reserve"` // new mail is refused with 452 4.3.1
	SpaceRefusals uint64 `json:"space_refusals"`
}

// QueueCounts are the queue's counters as `wasmta plugin status` and tests read them. Queued
// is what is spooled and not yet delivered, bounced or expired: at 0 no delivery can follow.
type QueueCounts struct {
	Queued    int64 `json:"queued"`
	Received  int64 `json:"received"`
	Delivered int64 `json:"delivered"`
	Transient int64 `json:"transient_failures"`
	Bounced   int64 `json:"bounced"`
	Expired   int64 `json:"expired"`
	// DeleteFailures are delivered messages whose spool delete failed (they may be sent again
	// after a restart); Panics are deliveries a recovered panic failed transiently.
	DeleteFailures int64 `json:"delete_failures"`
	Panics         int64 `json:"panics"`
	// AdminBounced are messages ended by an operator's bounce rule (admin API).
	AdminBounced int64 `json:"admin_bounced"`
}

// Send sends one request to a running server's control socket at path and returns its answer.
// A reload waits for every plugin to compile and initialise, hence the long deadline.
func Send(path, cmd string) (*Response, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	if err := json.NewEncoder(c).Encode(Request{Cmd: cmd}); err != nil {
		return nil, err
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, err
	}
	return &resp, nil
}
