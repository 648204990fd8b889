package queue

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/route"
)

// Administration of the queue (the admin API's suspend, bounce and rebind, after KumoMTA's
// /api/admin/{suspend,bounce,rebind}/v1).
//
// Nothing here keeps per-message state: a rule is matched against a message's scheduled queue
// name when the message is about to be attempted (dispatch, and again when a connection takes
// it from its ready queue), and operations on mail already queued walk what the timer heap and
// the ready queues hold. A suspended message goes back onto the timer heap due at the end of the
// suspension; cancelling the suspension makes the messages due at exactly that instant due now.

// DefaultRuleDuration is how long a suspension or bounce rule lasts when the request names
// neither duration nor expires (KumoMTA's default).
const DefaultRuleDuration = 5 * time.Minute

// MaxRules bounds the active rules: each one is matched against every message attempted.
const MaxRules = 1000

// Rule kinds.
const (
	KindSuspend = "suspend"
	KindBounce  = "bounce"
)

// Selector picks scheduled queues by the parts of their names (design.md §2). A nil field matches
// anything; a set field matches only queues that have that part, equal (domains compare
// case-insensitively). QueueNames, when not empty, takes precedence over the parts and lists
// exact queue names. An empty selector matches every queue, as in KumoMTA.
type Selector struct {
	Campaign      *string  `json:"campaign,omitempty"`
	Tenant        *string  `json:"tenant,omitempty"`
	Domain        *string  `json:"domain,omitempty"`
	RoutingDomain *string  `json:"routing_domain,omitempty"`
	QueueNames    []string `json:"queue_names,omitempty"`
}

// normalize turns empty strings into "any", so that a form or CLI flag left empty does not
// select "queues without a tenant".
func (s *Selector) normalize() {
	for _, p := range []**string{&s.Campaign, &s.Tenant, &s.Domain, &s.RoutingDomain} {
		if *p != nil && **p == "" {
			*p = nil
		}
	}
	s.QueueNames = slices.DeleteFunc(s.QueueNames, func(n string) bool { return n == "" })
}

// Match reports whether the scheduled queue name (with parts c) is selected.
func (s *Selector) Match(name string, c route.Components) bool {
	if len(s.QueueNames) > 0 {
		return slices.Contains(s.QueueNames, name)
	}
	return part(s.Campaign, c.Campaign, false) && part(s.Tenant, c.Tenant, false) &&
		part(s.Domain, c.Domain, true) && part(s.RoutingDomain, c.RoutingDomain, true)
}

func part(want *string, have string, fold bool) bool {
	switch {
	case want == nil:
		return true
	case have == "":
		return false // the rule wants a specific value and the queue has none
	case fold:
		return strings.EqualFold(*want, have)
	default:
		return *want == have
	}
}

// RuleRequest asks for a suspension or a bounce rule.
type RuleRequest struct {
	Selector
	Reason   string
	Duration time.Duration // 0: Expires, or DefaultRuleDuration
	Expires  time.Time     // used when Duration is 0
	// SuppressLogging: no AdminBounce records (bounce rules).
	SuppressLogging bool
}

// Rule is an active suspension or bounce rule, as stored in the spool.
type Rule struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	Selector
	Reason          string    `json:"reason"`
	Created         time.Time `json:"created"`
	Expires         time.Time `json:"expires"`
	SuppressLogging bool      `json:"suppress_logging,omitempty"`
}

// RuleInfo is a rule as listed: the rule, and for a bounce rule what it bounced since the
// relay started (per scheduled queue).
type RuleInfo struct {
	Rule
	Bounced      map[string]int `json:"bounced,omitempty"`
	TotalBounced int            `json:"total_bounced"`
}

// RuleStore keeps rules across restarts (the spool).
type RuleStore interface {
	PutRule(id string, v []byte) error
	DeleteRule(id string) error
	Rules() (map[string][]byte, error)
}

// BadRequest is an admin request that cannot be carried out as asked; its text is safe to
// show to the caller.
type BadRequest struct{ Msg string }

func (e *BadRequest) Error() string { return e.Msg }

func badRequest(format string, args ...any) error {
	return &BadRequest{Msg: fmt.Sprintf(format, args...)}
}

// ErrNoRule is returned when cancelling a rule that does not exist (or already expired).
var ErrNoRule = errors.New("no such rule")

// activeRule is a rule with its counters.
type activeRule struct {
	Rule
	mu      sync.Mutex
	bounced map[string]int
}

func (r *activeRule) active(now time.Time) bool { return now.Before(r.Expires) }

func (r *activeRule) count(queue string) {
	r.mu.Lock()
	if r.bounced == nil {
		r.bounced = map[string]int{}
	}
	r.bounced[queue]++
	r.mu.Unlock()
}

// rules is the published rule set, replaced whole on every change (copy on write): the
// delivery path reads it with one atomic load and no lock.
type rules struct {
	list []*activeRule
}

// newRuleID is a random (version 4) UUID, the form KumoMTA gives its rule ids.
func newRuleID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// LoadRules reads the rules kept in the store (call it before Recover, so that recovered mail
// obeys them). Expired rules are deleted; an unreadable one is reported and left in place.
func (m *Manager) LoadRules() (int, error) {
	if m.opt.Rules == nil {
		return 0, nil
	}
	stored, err := m.opt.Rules.Rules()
	if err != nil {
		return 0, err
	}
	now := m.opt.Clock.Now()
	m.rulesMu.Lock()
	defer m.rulesMu.Unlock()
	var list []*activeRule
	for id, v := range stored {
		var r Rule
		if err := json.Unmarshal(v, &r); err != nil || r.ID != id || (r.Kind != KindSuspend && r.Kind != KindBounce) {
			m.opt.Diag.Error("unreadable admin rule left in the spool", "id", id, "err", err)
			continue
		}
		if !now.Before(r.Expires) {
			if err := m.opt.Rules.DeleteRule(id); err != nil {
				m.opt.Diag.Warn("deleting an expired admin rule failed", "id", id, "err", err)
			}
			continue
		}
		list = append(list, &activeRule{Rule: r})
	}
	slices.SortFunc(list, func(a, b *activeRule) int { return a.Created.Compare(b.Created) })
	m.rules.Store(&rules{list: list})
	return len(list), nil
}

// addRule validates, persists and publishes a rule.
func (m *Manager) addRule(kind string, req RuleRequest) (*activeRule, error) {
	req.normalize()
	if strings.TrimSpace(req.Reason) == "" {
		return nil, badRequest("reason is required")
	}
	if req.Duration < 0 {
		return nil, badRequest("duration must not be negative")
	}
	now := m.opt.Clock.Now()
	r := &activeRule{Rule: Rule{ID: newRuleID(), Kind: kind, Selector: req.Selector, Reason: req.Reason,
		Created: now, SuppressLogging: req.SuppressLogging}}
	switch {
	case req.Duration > 0:
		r.Expires = now.Add(req.Duration)
	case !req.Expires.IsZero():
		if !req.Expires.After(now) {
			return nil, badRequest("expires is in the past")
		}
		r.Expires = req.Expires
	default:
		r.Expires = now.Add(DefaultRuleDuration)
	}
	m.rulesMu.Lock()
	defer m.rulesMu.Unlock()
	cur := m.pruneLocked(now)
	if len(cur) >= MaxRules {
		return nil, badRequest("too many active rules (%d); cancel some first", MaxRules)
	}
	if m.opt.Rules != nil {
		v, err := json.Marshal(r.Rule)
		if err != nil {
			return nil, err
		}
		if err := m.opt.Rules.PutRule(r.ID, v); err != nil {
			return nil, fmt.Errorf("storing the rule: %w", err)
		}
	}
	m.rules.Store(&rules{list: append(slices.Clip(cur), r)})
	return r, nil
}

// pruneLocked drops expired rules (from the store too) and returns the active ones.
func (m *Manager) pruneLocked(now time.Time) []*activeRule {
	rs := m.rules.Load()
	if rs == nil {
		return nil
	}
	keep := make([]*activeRule, 0, len(rs.list))
	for _, r := range rs.list {
		if r.active(now) {
			keep = append(keep, r)
		} else if m.opt.Rules != nil {
			if err := m.opt.Rules.DeleteRule(r.ID); err != nil {
				m.opt.Diag.Warn("deleting an expired admin rule failed", "id", r.ID, "err", err)
			}
		}
	}
	if len(keep) != len(rs.list) {
		m.rules.Store(&rules{list: keep})
	}
	return keep
}

// Suspend adds a suspension: matching mail is not attempted until it expires or is cancelled.
func (m *Manager) Suspend(req RuleRequest) (Rule, error) {
	r, err := m.addRule(KindSuspend, req)
	if err != nil {
		return Rule{}, err
	}
	return r.Rule, nil
}

// Swept is what a new bounce rule did at once.
type Swept struct {
	Bounced map[string]int // messages bounced, per scheduled queue
	// InFlight counts matching messages being attempted at this moment: each is bounced when
	// its attempt ends without a delivery or a bounce, if the rule still lasts then.
	InFlight int
}

// Bounce adds a bounce rule and bounces every matching message queued now (those being
// attempted at this moment are bounced when their attempt ends, if it fails temporarily). It
// returns the rule and what the sweep did.
func (m *Manager) Bounce(req RuleRequest) (Rule, Swept, error) {
	r, err := m.addRule(KindBounce, req)
	if err != nil {
		return Rule{}, Swept{}, err
	}
	s := Swept{Bounced: m.sweep(r)}
	if len(s.Bounced) > 0 {
		// The API answers with what it bounced: those deletes must survive a crash, or the
		// messages come back after their AdminBounce records, due at their old retry time, and
		// are attempted (and delivered, once the rule has expired) then.
		if err := m.flush(); err != nil {
			return Rule{}, Swept{}, fmt.Errorf("bounced messages not removed for sure (a restart may bring them back): %w", err)
		}
	}
	m.eachFlight(func(f *flight) {
		if r.Match(f.msg.Queue, m.comps(f.msg.Queue)) {
			s.InFlight++
		}
	})
	return r.Rule, s, nil
}

// sweep bounces every queued message a new bounce rule matches.
func (m *Manager) sweep(r *activeRule) map[string]int {
	swept := map[string]int{}
	for _, it := range m.extract(func(name string) bool { return r.Match(name, m.comps(name)) }) {
		swept[it.msg.Queue]++
		m.adminBounce(it.msg, r, it.site)
	}
	return swept
}

// Adopt puts in force a rule made elsewhere (another node of a cluster), with the effect the
// same rule made here has: a suspension holds matching mail, a bounce rule bounces matching
// queued mail at once and new arrivals while it lasts. It is not written to Options.Rules
// (the caller keeps its own copy). A rule already in force (same id) or expired is ignored.
func (m *Manager) Adopt(r Rule) (swept map[string]int, err error) {
	if r.ID == "" || (r.Kind != KindSuspend && r.Kind != KindBounce) {
		return nil, badRequest("rule %q: bad id or kind %q", r.ID, r.Kind)
	}
	r.normalize()
	now := m.opt.Clock.Now()
	ar := &activeRule{Rule: r}
	m.rulesMu.Lock()
	cur := m.pruneLocked(now)
	switch {
	case !ar.active(now) || slices.ContainsFunc(cur, func(x *activeRule) bool { return x.ID == r.ID }):
		m.rulesMu.Unlock()
		return nil, nil
	case len(cur) >= MaxRules:
		m.rulesMu.Unlock()
		return nil, badRequest("too many active rules (%d)", MaxRules)
	}
	m.rules.Store(&rules{list: append(slices.Clip(cur), ar)})
	m.rulesMu.Unlock()
	if r.Kind == KindBounce {
		swept = m.sweep(ar)
		if len(swept) > 0 {
			if err := m.flush(); err != nil { // as in Bounce
				m.opt.Diag.Warn("spool flush after an adopted bounce rule failed", "rule", r.ID, "err", err)
			}
		}
		return swept, nil
	}
	return nil, nil
}

// Drop ends a rule cancelled elsewhere (another node of a cluster), as CancelRule does but
// without touching Options.Rules. ErrNoRule when it is not in force.
func (m *Manager) Drop(id string) error {
	m.rulesMu.Lock()
	cur := m.pruneLocked(m.opt.Clock.Now())
	i := slices.IndexFunc(cur, func(r *activeRule) bool { return r.ID == id })
	if i < 0 {
		m.rulesMu.Unlock()
		return ErrNoRule
	}
	r := cur[i]
	m.rules.Store(&rules{list: slices.Delete(slices.Clone(cur), i, i+1)})
	m.rulesMu.Unlock()
	m.release(r)
	return nil
}

// Rules lists the active rules of a kind, oldest first.
func (m *Manager) Rules(kind string) []RuleInfo {
	m.rulesMu.Lock()
	cur := m.pruneLocked(m.opt.Clock.Now())
	m.rulesMu.Unlock()
	out := []RuleInfo{}
	for _, r := range cur {
		if r.Kind != kind {
			continue
		}
		ri := RuleInfo{Rule: r.Rule}
		r.mu.Lock()
		ri.Bounced = maps.Clone(r.bounced)
		r.mu.Unlock()
		for _, n := range ri.Bounced {
			ri.TotalBounced += n
		}
		out = append(out, ri)
	}
	return out
}

// CancelRule removes a rule of a kind. Cancelling a suspension releases the mail it holds at
// once (unless another suspension still holds it).
func (m *Manager) CancelRule(kind, id string) error {
	m.rulesMu.Lock()
	cur := m.pruneLocked(m.opt.Clock.Now())
	i := slices.IndexFunc(cur, func(r *activeRule) bool { return r.ID == id && r.Kind == kind })
	if i < 0 {
		m.rulesMu.Unlock()
		return ErrNoRule
	}
	r := cur[i]
	if m.opt.Rules != nil {
		if err := m.opt.Rules.DeleteRule(id); err != nil {
			m.rulesMu.Unlock()
			return fmt.Errorf("deleting the rule: %w", err)
		}
	}
	m.rules.Store(&rules{list: slices.Delete(slices.Clone(cur), i, i+1)})
	m.rulesMu.Unlock()
	m.release(r)
	return nil
}

// release makes the mail a cancelled suspension held due now.
func (m *Manager) release(r *activeRule) {
	if r.Kind != KindSuspend {
		return
	}
	// A message held by r waits on the heap due at exactly r.Expires (see intercept).
	until := nanos(r.Expires)
	for _, e := range m.timers.extract(func(e *entry) bool {
		return e.due == until && r.Match(e.q.name, e.q.comps)
	}) {
		m.forgetSlots(e.id())
		now := m.opt.Clock.Now()
		if e.due = nanos(now); e.msg != nil {
			e.msg.Due = now
		}
		m.goDispatchEntry(e) // due now
	}
}

// comps are the parts of a queue name (zero for a name that does not parse). It lists no
// queue: admin selectors ask about names no message may hold.
func (m *Manager) comps(name string) route.Components {
	if q, ok := m.sched.Load(name); ok {
		return q.(*schedQueue).comps
	}
	c, _ := route.ParseQueueName(name)
	return c
}

// intercept applies the rules to a message about to be attempted: it reports true when a
// bounce rule ended it or a suspension put it back on the timer heap, due when the suspension
// ends. site is the ready queue it came from ("" from dispatch).
func (m *Manager) intercept(msg *message.Message, site string) bool {
	rs := m.rules.Load()
	if rs == nil || len(rs.list) == 0 {
		return false // the common case costs one atomic load
	}
	c := m.comps(msg.Queue)
	now := m.opt.Clock.Now()
	var until time.Time
	for _, r := range rs.list {
		if !r.active(now) || !r.Match(msg.Queue, c) {
			continue
		}
		if r.Kind == KindBounce {
			m.adminBounce(msg, r, site)
			return true
		}
		if r.Expires.After(until) {
			until = r.Expires
		}
	}
	if until.IsZero() {
		return false
	}
	// The message goes on the heap under rulesMu, with the rules it was judged by still in
	// force: a cancel between the judging and the wait would release what the heap held
	// before this message was on it, and leave it held until the suspension's old end.
	m.rulesMu.Lock()
	if m.rules.Load() != rs {
		m.rulesMu.Unlock()
		return m.intercept(msg, site) // the rules changed meanwhile: judge again
	}
	msg.Due = until
	// A rate slot it waited for is past by the time the suspension ends: it books again
	// then (as after a resume, see release), or every such message would go at once.
	m.forgetSlots(msg.ID)
	m.wait(msg) // its record is unchanged: only the due time moved, which the entry holds
	m.rulesMu.Unlock()
	return true
}

// bounceRuled ends msg by the first bounce rule in force that matches it, if any: a message
// whose attempt failed while a rule was made (suspensions are left to its next attempt).
func (m *Manager) bounceRuled(msg *message.Message, site string) bool {
	rs := m.rules.Load()
	if rs == nil || len(rs.list) == 0 {
		return false
	}
	c := m.comps(msg.Queue)
	now := m.opt.Clock.Now()
	for _, r := range rs.list {
		if r.Kind == KindBounce && r.active(now) && r.Match(msg.Queue, c) {
			m.adminBounce(msg, r, site)
			return true
		}
	}
	return false
}

// suspendedUntil is when the last suspension of the queue ends (zero: not suspended).
func (m *Manager) suspendedUntil(name string, c route.Components, now time.Time) time.Time {
	var until time.Time
	if rs := m.rules.Load(); rs != nil {
		for _, r := range rs.list {
			if r.Kind == KindSuspend && r.active(now) && r.Match(name, c) && r.Expires.After(until) {
				until = r.Expires
			}
		}
	}
	return until
}

// adminBounce ends a message by an operator's rule: KumoMTA's AdminBounce record,
// 551 5.7.1 "Administrator bounced with reason: ...".
func (m *Manager) adminBounce(msg *message.Message, r *activeRule, site string) {
	m.forgetSlots(msg.ID)
	m.adminBounced.Add(1)
	r.count(msg.Queue)
	if !r.SuppressLogging { // the record before the delete: see outcomeTLS
		reply := message.Reply{Code: 551, Enhanced: "5.7.1", Text: "Administrator bounced with reason: " + r.Reason}
		m.opt.Log.Log(m.record(logs.AdminBounce, msg, reply, place{site: site}, nil))
	}
	m.removed(msg.Queue) // see outcomeTLS
	m.delete(msg)
}

// waiting is a message taken out of the timer heap or a ready queue by an admin operation.
type waiting struct {
	msg  *message.Message
	site string // the ready queue it was in, "" for the timer heap
}

// extract takes every message of the matching scheduled queues out of the timer heap and the
// ready queues; the caller then owns them and must requeue, bounce or otherwise settle each
// one. The records of messages held in brief are read from the spool (see load: one that is
// gone is counted out, one that cannot be read now goes back on the heap).
func (m *Manager) extract(match func(queue string) bool) []waiting {
	var out []waiting
	for _, e := range m.timers.extract(func(e *entry) bool { return match(e.q.name) }) {
		msg := e.msg
		if msg == nil {
			if msg = m.load(e); msg == nil {
				continue
			}
		}
		out = append(out, waiting{msg: msg})
	}
	for _, rq := range m.readyQueues() {
		for _, it := range rq.extract(func(msg *message.Message) bool { return match(msg.Queue) }) {
			out = append(out, waiting{msg: it.msg, site: rq.name})
		}
	}
	return out
}

func (m *Manager) readyQueues() []*readyQueue {
	m.readyMu.Lock()
	defer m.readyMu.Unlock()
	out := make([]*readyQueue, 0, len(m.ready))
	for _, rq := range m.ready {
		out = append(out, rq)
	}
	slices.SortFunc(out, func(a, b *readyQueue) int { return strings.Compare(a.name, b.name) })
	return out
}

// requeue puts back a message an admin operation took out, without counting it again.
func (m *Manager) requeue(msg *message.Message) {
	m.forgetSlots(msg.ID)
	if !msg.Due.After(m.opt.Clock.Now()) {
		m.goDispatch(msg)
		return
	}
	m.wait(msg) // any change was sent to the spool with Update first
}

// RebindRequest is KumoMTA's rebind: set meta on matching messages, recompute their queue,
// and make them due now when the queue changed or AlwaysFlush is set ("retry now").
type RebindRequest struct {
	Selector
	Reason          string
	Data            map[string]string
	AlwaysFlush     bool
	SuppressLogging bool
}

// RebindResult counts what a rebind did.
type RebindResult struct {
	Matched int `json:"matched"` // messages selected
	Moved   int `json:"moved"`   // of those, now in another scheduled queue
	Flushed int `json:"flushed"` // made due now
	// InFlight counts matching messages being attempted at this moment: the rebind is applied
	// to each when its attempt ends, unless the attempt delivered or bounced it.
	InFlight int `json:"in_flight"`
}

// Rebind applies req to every matching message queued now; a matching message being
// attempted at this moment gets it when its attempt ends, unless the attempt delivered or
// bounced it. Each message moved or flushed gets an AdminRebind record, "Rebound from <old>
// to <new>: <reason>".
func (m *Manager) Rebind(req RebindRequest) (RebindResult, error) {
	req.normalize()
	if strings.TrimSpace(req.Reason) == "" {
		return RebindResult{}, badRequest("reason is required")
	}
	// Refuse a queue or routing domain delivery could not parse before touching any message:
	// applied, it would bounce every message it selects (one typo in an admin command).
	for _, k := range slices.Sorted(maps.Keys(req.Data)) {
		if err := route.CheckMeta(k, req.Data[k]); err != nil {
			text := err.Error()
			if e, ok := errors.AsType[*message.Error](err); ok {
				text = e.Text
			}
			return RebindResult{}, badRequest("data %s %q: %s", k, req.Data[k], text)
		}
	}
	var res RebindResult
	now := m.opt.Clock.Now()
	match := func(name string) bool { return req.Match(name, m.comps(name)) }
	updated := false
	for _, w := range m.extract(match) {
		msg := w.msg
		res.Matched++
		moved, flushed := m.rebindOne(msg, req, now)
		if moved {
			res.Moved++
		}
		if flushed {
			res.Flushed++
		}
		if len(req.Data) > 0 || flushed {
			if err := m.opt.Store.Update(msg); err != nil {
				m.opt.Diag.Warn("spool update failed", "id", msg.ID, "err", err)
			}
			updated = true
		}
		m.requeue(msg)
	}
	if updated {
		if err := m.flush(); err != nil {
			// Applied in memory, but a restart would undo it: the operator must know.
			return res, fmt.Errorf("rebind applied but not stored (a restart undoes it): %w", err)
		}
	}
	m.eachFlight(func(f *flight) {
		if match(f.msg.Queue) && len(f.rebinds) < MaxFlightRebinds {
			f.rebinds = append(f.rebinds, req)
			res.InFlight++
		}
	})
	return res, nil
}

// Flusher is what a Store may also be: one whose Update and Delete do not wait for the disk
// (a lost retry time costs only an early retry, a lost delete a repeated delivery) but can be
// made to. Flush returns once every write sent before it is committed.
type Flusher interface {
	Flush() error
}

// flush commits the Updates and Deletes sent so far when the store defers them. An admin
// change the API answered for (a rebind, a bounce) must survive a crash: without it, a kill
// within the spool's lazy commit delay brought the messages back as they were, in their old
// queue at their old retry time, after their AdminRebind or AdminBounce records were logged.
func (m *Manager) flush() error {
	if f, ok := m.opt.Store.(Flusher); ok {
		return f.Flush()
	}
	return nil
}

// MaxFlightRebinds bounds the rebinds kept for one message while it is being attempted (a
// script retrying a rebind in a loop during a slow attempt must not grow it without end);
// further ones leave that message alone and are not counted in RebindResult.InFlight.
const MaxFlightRebinds = 32

// rebindOne applies req to msg, which the caller owns: meta, scheduled queue (moving its count
// there), due now when it moved or req flushes, and the AdminRebind record. The caller updates
// the spool and requeues it.
func (m *Manager) rebindOne(msg *message.Message, req RebindRequest, now time.Time) (moved, flushed bool) {
	old := msg.Queue
	if len(req.Data) > 0 {
		// Recipients of one transaction share their meta map: copy before writing.
		meta := maps.Clone(msg.Meta)
		if meta == nil {
			meta = map[string]string{}
		}
		maps.Copy(meta, req.Data)
		msg.Meta = meta
		if _, domain, err := route.ParseMailbox(msg.Recipient); err == nil {
			msg.Queue = route.QueueName(meta, domain)
		}
	}
	moved = msg.Queue != old
	flushed = moved || req.AlwaysFlush
	if moved {
		m.hold(msg.Queue) // before the old queue lets go, so the message is never in none
		m.unhold(old)
	}
	if flushed {
		msg.Due = now
	}
	if flushed && !req.SuppressLogging {
		reply := message.Reply{Code: 250, Text: fmt.Sprintf("Rebound from %s to %s: %s", old, msg.Queue, req.Reason)}
		m.opt.Log.Log(m.record(logs.AdminRebind, msg, reply, place{}, nil))
	}
	return moved, flushed
}

// Summary is a snapshot of what the queue holds.
type Summary struct {
	Now       time.Time      `json:"now"`
	Queued    int64          `json:"queued"` // every message held, including those being attempted
	Scheduled []SchedSummary `json:"scheduled_queues"`
	Ready     []ReadySummary `json:"ready_queues"`
	// SchedKept counts the scheduled queues whose state (cached config, rate limit) the relay
	// keeps: those listed above, those whose messages are all being attempted, and empty ones
	// not dropped yet (sweepSched).
	SchedKept int `json:"scheduled_queues_kept"`
}

// SchedSummary is one scheduled queue: the messages waiting for their next attempt (on the
// timer heap) or for a connection (in a ready queue).
type SchedSummary struct {
	Name           string     `json:"name"`
	Count          int        `json:"count"`
	Oldest         time.Time  `json:"oldest"`             // creation time of the oldest message
	NextDue        *time.Time `json:"next_due,omitempty"` // of the messages on the timer heap
	SuspendedUntil *time.Time `json:"suspended_until,omitempty"`
	// Delivering counts the queue's messages being attempted at this moment (not in Count).
	Delivering int `json:"delivering"`
}

// ReadySummary is one ready queue (a site: the hosts a destination resolved to).
type ReadySummary struct {
	Name           string     `json:"name"`
	Count          int        `json:"count"`       // due, waiting for a connection
	Connections    int        `json:"connections"` // connection workers (open or opening)
	Delivering     int        `json:"delivering"`  // messages being attempted on them now
	LastResponse   string     `json:"last_response,omitempty"`
	LastResponseAt *time.Time `json:"last_response_at,omitempty"`
}

// Summary walks the timer heap and the ready queues once; it keeps one entry per queue name,
// nothing per message.
func (m *Manager) Summary() Summary {
	now := m.opt.Clock.Now()
	s := Summary{Now: now, Queued: m.queued.Load(), Scheduled: []SchedSummary{}, Ready: []ReadySummary{}}
	byName := map[string]*SchedSummary{}
	add := func(name string, created, due time.Time, heap bool) {
		q := byName[name]
		if q == nil {
			q = &SchedSummary{Name: name, Oldest: created}
			byName[name] = q
		}
		q.Count++
		if created.Before(q.Oldest) {
			q.Oldest = created
		}
		if heap && (q.NextDue == nil || due.Before(*q.NextDue)) {
			q.NextDue = &due
		}
	}
	m.timers.each(func(e *entry) {
		if e.msg != nil {
			add(e.q.name, e.msg.Created, e.msg.Due, true)
		} else {
			add(e.q.name, e.createdTime(), e.dueTime(), true)
		}
	})
	for _, rq := range m.readyQueues() {
		rs := ReadySummary{Name: rq.name}
		rq.mu.Lock()
		for _, it := range rq.items {
			add(it.msg.Queue, it.msg.Created, it.msg.Due, false)
		}
		rs.Count, rs.Connections = len(rq.items), rq.active
		if !rq.lastAt.IsZero() {
			at := rq.lastAt
			rs.LastResponse, rs.LastResponseAt = rq.last, &at
		}
		rq.mu.Unlock()
		s.Ready = append(s.Ready, rs)
	}
	delivering := map[string]int{} // by site
	m.eachFlight(func(f *flight) {
		delivering[f.site]++
		q := byName[f.msg.Queue]
		if q == nil {
			q = &SchedSummary{Name: f.msg.Queue, Oldest: f.msg.Created}
			byName[f.msg.Queue] = q
		} else if f.msg.Created.Before(q.Oldest) {
			q.Oldest = f.msg.Created
		}
		q.Delivering++
	})
	m.eachDispatch(func(d dispatchEntry) {
		add(d.queue, d.created, time.Time{}, false)
	})
	for i := range s.Ready {
		s.Ready[i].Delivering = delivering[s.Ready[i].Name]
	}
	for _, q := range byName {
		if u := m.suspendedUntil(q.Name, m.comps(q.Name), now); !u.IsZero() {
			q.SuspendedUntil = &u
		}
		s.Scheduled = append(s.Scheduled, *q)
	}
	slices.SortFunc(s.Scheduled, func(a, b SchedSummary) int { return strings.Compare(a.Name, b.Name) })
	s.SchedKept = m.schedKept()
	return s
}

// Queued is a copy of a queued message as the admin API shows it.
type Queued struct {
	message.Message
	// Site is the ready queue holding it or attempting it, "" while it waits on the timer heap.
	Site string
	// State is where it is: StateWaiting, StateReady or StateDelivering.
	State string
}

// Queued.State values.
const (
	StateWaiting    = "waiting"    // on the timer heap, until its due time
	StateReady      = "ready"      // due, in its site's ready queue, waiting for a connection
	StateDelivering = "delivering" // being attempted by a connection at this moment
	// StateDispatching: leaving the timer heap (or reception) for a ready queue: its queue
	// config read, its destination resolved, its egress path fetched (dispatching.go).
	StateDispatching = "dispatching"
)

// Inspect finds a queued message by id: waiting, ready, or being attempted at this moment. A
// message waiting in brief is shown with its record read from the spool.
func (m *Manager) Inspect(id message.ID) (Queued, bool) {
	k, isKey := id.Key()
	got, _ := m.find(func(e *entry) bool {
		if e.msg != nil {
			return e.msg.ID == id
		}
		return isKey && e.key == k
	}, func(msg *message.Message) bool { return msg.ID == id },
		func(d dispatchEntry) bool { return d.id == id }, 1)
	if len(got) == 0 {
		return Queued{}, false
	}
	return got[0], true
}

// Messages returns up to limit messages of a scheduled queue, and how many it holds.
func (m *Manager) Messages(queue string, limit int) ([]Queued, int) {
	return m.find(func(e *entry) bool { return e.q.name == queue },
		func(msg *message.Message) bool { return msg.Queue == queue },
		func(d dispatchEntry) bool { return d.queue == queue }, limit)
}

// find copies up to limit matching messages and counts all matches: onHeap matches the timer
// heap's entries, ready the ready queues' messages and those in flight, dispatched the messages
// being dispatched. The records of the messages held in brief and of those being dispatched are
// read from the spool after the locks are released; one delivered meanwhile is left out of the
// copies (not of the count).
func (m *Manager) find(onHeap func(*entry) bool, ready func(*message.Message) bool, dispatched func(dispatchEntry) bool, limit int) ([]Queued, int) {
	var out []Queued
	var brief []entry
	var inDispatch []message.ID
	n := 0
	take := func(msg *message.Message, site, state string) {
		n++
		if len(out)+len(brief) < limit {
			out = append(out, Queued{Message: copyOf(msg), Site: site, State: state})
		}
	}
	m.timers.each(func(e *entry) {
		if !onHeap(e) {
			return
		}
		if e.msg != nil {
			take(e.msg, "", StateWaiting)
			return
		}
		n++
		if len(out)+len(brief) < limit {
			brief = append(brief, *e)
		}
	})
	for _, rq := range m.readyQueues() {
		rq.mu.Lock()
		for _, it := range rq.items {
			if ready(it.msg) {
				take(it.msg, rq.name, StateReady)
			}
		}
		rq.mu.Unlock()
	}
	m.eachFlight(func(f *flight) {
		if ready(f.msg) {
			take(f.msg, f.site, StateDelivering)
		}
	})
	m.eachDispatch(func(d dispatchEntry) {
		if dispatched(d) {
			n++
			if len(out)+len(brief)+len(inDispatch) < limit {
				inDispatch = append(inDispatch, d.id)
			}
		}
	})
	for _, id := range inDispatch {
		msg, err := m.opt.Store.Get(id)
		if err != nil {
			if !errors.Is(err, message.ErrNotInSpool) {
				m.opt.Diag.Warn("spool read failed", "id", id, "err", err)
			}
			continue
		}
		out = append(out, Queued{Message: *msg, State: StateDispatching})
	}
	for _, e := range brief {
		msg, err := m.read(e)
		if err != nil {
			if !errors.Is(err, message.ErrNotInSpool) {
				m.opt.Diag.Warn("spool read failed", "id", e.key.ID(), "err", err)
			}
			continue
		}
		out = append(out, Queued{Message: *msg, State: StateWaiting})
	}
	return out, n
}

// Body returns a queued message's body from the spool.
func (m *Manager) Body(msg *message.Message) ([]byte, error) { return m.opt.Store.Body(msg) }
