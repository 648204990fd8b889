package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wasmta/wasmta/abi"
	"github.com/wasmta/wasmta/host/control"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/queue"
)

// The admin routes follow KumoMTA's /api/admin/*/v1 paths and JSON field names (docs/admin.md),
// so that an operator's scripts and habits carry over. They sit behind the same authentication
// as injection, with one difference: [http] inject_token is never accepted here.

// Admin route paths.
const (
	LivenessPath      = "/api/check-liveness/v1"
	ReadinessPath     = "/api/check-readiness/v1"
	QueueSummaryPath  = "/api/admin/queue-summary/v1"
	InspectMsgPath    = "/api/admin/inspect-message/v1"
	InspectSchedPath  = "/api/admin/inspect-sched-q/v1"
	SuspendPath       = "/api/admin/suspend/v1"
	BouncePath        = "/api/admin/bounce/v1"
	RebindPath        = "/api/admin/rebind/v1"
	PluginReloadPath  = "/api/admin/plugin/reload/v1"
	PluginStatusPath  = "/api/admin/plugin/status/v1"
	defaultInspectCap = 100 // inspect-sched-q returns at most this many messages unless limit says otherwise
	maxInspectCap     = 10000
)

// Admin is what the admin routes act on (queue.Manager).
type Admin interface {
	Summary() queue.Summary
	Inspect(id message.ID) (queue.Queued, bool)
	Messages(queue string, limit int) ([]queue.Queued, int)
	Body(m *message.Message) ([]byte, error)
	Suspend(queue.RuleRequest) (queue.Rule, error)
	Bounce(queue.RuleRequest) (queue.Rule, queue.Swept, error)
	Rules(kind string) []queue.RuleInfo
	CancelRule(kind, id string) error
	Rebind(queue.RebindRequest) (queue.RebindResult, error)
}

var _ Admin = (*queue.Manager)(nil)

// ClusterSummaryPath lists every live node of the cluster and its queues (control.ClusterSummary).
const ClusterSummaryPath = "/api/admin/cluster/queue-summary/v1"

// Fleet is the cluster this node belongs to ([redis]).
type Fleet interface {
	// Summary gathers every live node's heartbeat.
	Summary(ctx context.Context) (control.ClusterSummary, error)
}

// unavailable is an error of a store that cannot be reached right now (the cluster's Redis):
// nothing was changed and the same request may succeed later, hence 503.
type unavailable interface{ Unavailable() bool }

// Control runs a control-socket command ("reload", "status") and returns its response; ok is
// false when the command failed (a plugin version was refused).
type Control func(cmd, reason string) (resp any, ok bool)

// isHealthPath reports the probe routes, which answer without a token: a load balancer or an
// orchestrator polls them, and they reveal only "OK" or why not.
func isHealthPath(p string) bool { return p == LivenessPath || p == ReadinessPath }

func (s *Server) registerAdmin() {
	s.mux.HandleFunc("GET "+LivenessPath, func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "OK") })
	s.mux.HandleFunc("GET "+ReadinessPath, s.readiness)
	if s.opt.Control != nil {
		s.mux.HandleFunc("POST "+PluginReloadPath, func(w http.ResponseWriter, r *http.Request) { s.control(w, "reload") })
		s.mux.HandleFunc("GET "+PluginStatusPath, func(w http.ResponseWriter, r *http.Request) { s.control(w, "status") })
	}
	if s.opt.Admin == nil {
		return
	}
	s.mux.HandleFunc("GET "+QueueSummaryPath, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.opt.Admin.Summary())
	})
	s.mux.HandleFunc("GET "+InspectMsgPath, s.inspectMessage)
	s.mux.HandleFunc("GET "+InspectSchedPath, s.inspectSchedQ)
	for path, kind := range map[string]string{SuspendPath: queue.KindSuspend, BouncePath: queue.KindBounce} {
		s.mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) { s.addRule(w, r, kind) })
		s.mux.HandleFunc("GET "+path, func(w http.ResponseWriter, _ *http.Request) { s.listRules(w, kind) })
		s.mux.HandleFunc("DELETE "+path, func(w http.ResponseWriter, r *http.Request) { s.cancelRule(w, r, kind) })
	}
	s.mux.HandleFunc("POST "+RebindPath, s.rebind)
	s.mux.HandleFunc("GET "+ClusterSummaryPath, s.clusterSummary)
}

// clusterSummary answers from the nodes' heartbeats in Redis: 404 on a node outside a
// cluster, 503 while Redis cannot be reached.
func (s *Server) clusterSummary(w http.ResponseWriter, r *http.Request) {
	if s.opt.Fleet == nil {
		writeError(w, http.StatusNotFound, "this node is not part of a cluster ([redis] url is not set): use the queue summary of each node")
		return
	}
	sum, err := s.opt.Fleet.Summary(r.Context())
	if errors.As(err, new(unavailable)) {
		s.opt.Diag.Warn("cluster summary unavailable", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the cluster's Redis cannot be reached: the nodes' heartbeats cannot be read; each node's own queue summary still answers")
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, sum)
}

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text+"\n")
}

// readiness is 200 "OK" while the relay takes mail, else 503 with the reason (starting,
// shutting down, spool unhealthy after a failed sync, spool below its free-space reserve).
func (s *Server) readiness(w http.ResponseWriter, _ *http.Request) {
	if s.opt.Ready != nil {
		if err := s.opt.Ready(); err != nil {
			writeText(w, http.StatusServiceUnavailable, err.Error())
			return
		}
	}
	writeText(w, http.StatusOK, "OK")
}

func (s *Server) control(w http.ResponseWriter, cmd string) {
	resp, ok := s.opt.Control(cmd, "http "+cmd)
	status := http.StatusOK
	if !ok {
		status = http.StatusUnprocessableEntity // a plugin version was refused; the old one serves
	}
	writeJSON(w, status, resp)
}

// messageInfo is KumoMTA's MessageInformation, with the scheduling fields wasmta has.
type messageInfo struct {
	Sender      string            `json:"sender"`
	Recipient   string            `json:"recipient"`
	Meta        map[string]string `json:"meta"`
	Data        *string           `json:"data"`
	Due         time.Time         `json:"due"`
	NumAttempts int               `json:"num_attempts"`
	Created     time.Time         `json:"created"`
	Queue       string            `json:"queue"`
	Size        int               `json:"size"`
	// Site is the ready queue holding the message, or whose connection is attempting it; ""
	// while it waits for its due time.
	Site string `json:"site"`
	// State is "waiting" (for its due time), "dispatching" (its destination being resolved),
	// "ready" (waiting for a connection) or "delivering" (being attempted at this moment).
	State string `json:"state"`
}

type inspectResponse struct {
	ID      string      `json:"id"`
	Message messageInfo `json:"message"`
}

func (s *Server) info(q queue.Queued, wantBody bool) (inspectResponse, error) {
	mi := messageInfo{Sender: q.Sender, Recipient: q.Recipient, Meta: q.Meta, Due: q.Due, NumAttempts: q.Attempts,
		Created: q.Created, Queue: q.Queue, Size: q.Size, Site: q.Site, State: q.State}
	if mi.Meta == nil {
		mi.Meta = map[string]string{}
	}
	if wantBody {
		b, err := s.opt.Admin.Body(&q.Message)
		if err != nil {
			return inspectResponse{}, err
		}
		d := string(b)
		mi.Data = &d
	}
	return inspectResponse{ID: string(q.ID), Message: mi}, nil
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("%s must be true or false", name)
	}
	return b, nil
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '-') {
			return false
		}
	}
	return true
}

func (s *Server) inspectMessage(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if !validID(id) {
		writeError(w, http.StatusBadRequest, "id must be a spool id (hex)")
		return
	}
	wantBody, err := boolParam(r, "want_body")
	if err != nil {
		s.fail(w, err)
		return
	}
	q, ok := s.opt.Admin.Inspect(message.ID(strings.ToLower(id)))
	if !ok {
		writeError(w, http.StatusNotFound, "no such message queued (delivered, bounced, or being attempted right now)")
		return
	}
	resp, err := s.info(q, wantBody)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// inspectSchedQResponse is KumoMTA's InspectQueueV1Response, less its queue config.
type inspectSchedQResponse struct {
	QueueName    string            `json:"queue_name"`
	Messages     []inspectResponse `json:"messages"`
	NumScheduled int               `json:"num_scheduled"`
	Now          time.Time         `json:"now"`
}

func (s *Server) inspectSchedQ(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("queue_name")
	if name == "" {
		writeError(w, http.StatusBadRequest, "queue_name is required")
		return
	}
	wantBody, err := boolParam(r, "want_body")
	if err != nil {
		s.fail(w, err)
		return
	}
	limit := defaultInspectCap
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 || limit > maxInspectCap {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be 0 to %d", maxInspectCap))
			return
		}
	}
	msgs, n := s.opt.Admin.Messages(name, limit)
	resp := inspectSchedQResponse{QueueName: name, Messages: []inspectResponse{}, NumScheduled: n, Now: s.opt.Now().UTC()}
	for _, q := range msgs {
		mi, err := s.info(q, wantBody)
		if err != nil {
			continue // delivered while we looked
		}
		resp.Messages = append(resp.Messages, mi)
	}
	writeJSON(w, http.StatusOK, resp)
}

// duration is a KumoMTA duration: a string ("90s", "20m", "2h", "7d") or a number of seconds.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := abi.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return errors.New("duration must be a string like \"20m\" or a number of seconds")
	}
	if secs < 0 || secs > float64(1<<62)/1e9 {
		return errors.New("duration out of range")
	}
	*d = duration(time.Duration(secs * 1e9))
	return nil
}

// ruleRequest is KumoMTA's SuspendV1Request / BounceV1Request (plus routing_domain for
// suspensions).
type ruleRequest struct {
	queue.Selector
	Reason          string     `json:"reason"`
	Duration        *duration  `json:"duration"`
	Expires         *time.Time `json:"expires"`
	SuppressLogging bool       `json:"suppress_logging"`
}

// decode reads a JSON request body within MaxRequestSize, refusing unknown fields: a
// misspelt selector ("domian") would otherwise select every queue.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid request: %s", err.Error())
	}
	if dec.More() {
		return badRequest("invalid request: more than one JSON value")
	}
	return nil
}

// fail answers an error: request errors with their status and text, the queue's BadRequest
// with 400, a missing rule with 404, an unreachable cluster store with 503, anything else with 500 and no detail (logged instead).
func (s *Server) fail(w http.ResponseWriter, err error) {
	var re *requestError
	var br *queue.BadRequest
	switch {
	case errors.As(err, &re):
		writeError(w, re.status, re.msg)
	case errors.As(err, &br):
		writeError(w, http.StatusBadRequest, br.Msg)
	case errors.Is(err, queue.ErrNoRule):
		writeError(w, http.StatusNotFound, "no such rule (it may have expired)")
	case errors.As(err, new(unavailable)):
		// A rule change must reach every node or none: it was not made anywhere.
		s.opt.Diag.Warn("admin request refused: cluster store unavailable", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the cluster's Redis cannot be reached: nothing was changed on any node; retry when it is back")
	default:
		s.opt.Diag.Error("admin request failed", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error; see the relay's log")
	}
}

type ruleResponse struct {
	ID string `json:"id"`
}

// bounceResponse is KumoMTA's BounceV1Response: what the initial sweep bounced.
type bounceResponse struct {
	ID           string         `json:"id"`
	Bounced      map[string]int `json:"bounced"`
	TotalBounced int            `json:"total_bounced"`
	// InFlight counts matching messages being attempted when the rule was made: each is
	// bounced when its attempt ends without a delivery or a bounce, if the rule lasts.
	InFlight int `json:"in_flight"`
}

func (s *Server) addRule(w http.ResponseWriter, r *http.Request, kind string) {
	var req ruleRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	rr := queue.RuleRequest{Selector: req.Selector, Reason: req.Reason, SuppressLogging: req.SuppressLogging}
	if req.Duration != nil {
		rr.Duration = time.Duration(*req.Duration)
		if rr.Duration == 0 {
			writeError(w, http.StatusBadRequest, "duration must be positive")
			return
		}
	}
	if req.Expires != nil {
		rr.Expires = *req.Expires
	}
	if kind == queue.KindSuspend {
		rule, err := s.opt.Admin.Suspend(rr)
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ruleResponse{ID: rule.ID})
		return
	}
	rule, swept, err := s.opt.Admin.Bounce(rr)
	if err != nil {
		s.fail(w, err)
		return
	}
	total := 0
	for _, n := range swept.Bounced {
		total += n
	}
	writeJSON(w, http.StatusOK, bounceResponse{ID: rule.ID, Bounced: swept.Bounced, TotalBounced: total, InFlight: swept.InFlight})
}

// ruleEntry is KumoMTA's SuspendV1ListEntry / BounceV1ListEntry: duration is the time left.
type ruleEntry struct {
	ID string `json:"id"`
	queue.Selector
	Reason       string         `json:"reason"`
	Duration     string         `json:"duration"`
	Expires      time.Time      `json:"expires"`
	Bounced      map[string]int `json:"bounced,omitempty"`
	TotalBounced *int           `json:"total_bounced,omitempty"`
}

func (s *Server) listRules(w http.ResponseWriter, kind string) {
	now := s.opt.Now()
	out := []ruleEntry{}
	for _, ri := range s.opt.Admin.Rules(kind) {
		e := ruleEntry{ID: ri.ID, Selector: ri.Selector, Reason: ri.Reason, Expires: ri.Expires.UTC(),
			Duration: max(ri.Expires.Sub(now), 0).Round(time.Second).String()}
		if kind == queue.KindBounce {
			total := ri.TotalBounced
			e.Bounced, e.TotalBounced = ri.Bounced, &total
			if e.Bounced == nil {
				e.Bounced = map[string]int{}
			}
		}
		out = append(out, e)
	}
	writeJSON(w, http.StatusOK, out)
}

// cancelRule takes KumoMTA's {"id": ...} body, or ?id=.
func (s *Server) cancelRule(w http.ResponseWriter, r *http.Request, kind string) {
	id := r.URL.Query().Get("id")
	if id == "" {
		var req struct {
			ID string `json:"id"`
		}
		if err := s.decode(w, r, &req); err != nil {
			s.fail(w, err)
			return
		}
		id = req.ID
	}
	if id == "" {
		writeError(w, http.StatusBadRequest, "id is required")
		return
	}
	if err := s.opt.Admin.CancelRule(kind, id); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id})
}

// rebindRequest is KumoMTA's RebindV1Request (plus queue_names).
type rebindRequest struct {
	queue.Selector
	Reason             string            `json:"reason"`
	Data               map[string]string `json:"data"`
	AlwaysFlush        bool              `json:"always_flush"`
	SuppressLogging    bool              `json:"suppress_logging"`
	TriggerRebindEvent bool              `json:"trigger_rebind_event"`
}

func (s *Server) rebind(w http.ResponseWriter, r *http.Request) {
	var req rebindRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if req.TriggerRebindEvent {
		writeError(w, http.StatusBadRequest, "trigger_rebind_event is not supported: wasmta has no rebind hook; data is applied to meta")
		return
	}
	res, err := s.opt.Admin.Rebind(queue.RebindRequest{Selector: req.Selector, Reason: req.Reason, Data: req.Data,
		AlwaysFlush: req.AlwaysFlush, SuppressLogging: req.SuppressLogging})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
