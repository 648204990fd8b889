// Package spool keeps messages durable in Badger: the envelope, meta and scheduling state of
// each message under "m/<id>", its body under "b/<id>", and a record that cannot be read,
// set aside, under "q/<id>".
//
// Writes go through one committer goroutine that gathers every request waiting at that moment
// into one transaction and makes it durable with one db.Sync (group commit). Badger runs with
// SyncWrites off because a per-transaction fsync caps the spool near 4k commits/s on our machines
// (about 4,300/s with 20 writers; docs/RATIONALE.md); grouping keeps one fsync per batch instead
// of one per message while every Put still returns only after its data is on disk. The
// committer syncs after every transaction, so a memtable rotation never strands unsynced entries
// in an immutable memtable. Deletes and state updates, which nobody waits for, join the next
// Put's transaction instead of costing a sync of their own (commitLoop).
//
// Badger faults (SIGBUS) instead of failing when its disk is full, so the spool keeps a reserve
// of free space (space.go): Room and Put refuse new mail with 452 4.3.1 before the reserve is
// touched, and Open waits for space rather than replay onto a full disk. Update and Delete are
// never refused: they are what deliveries write, deliveries are what frees space, and each is a
// few hundred bytes; the reserve, sized for everything Badger may write on its own, is what
// keeps them safe while reception is refused.
package spool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/wasmta/wasmta/host/message"
)

var (
	metaPrefix = []byte("m/")
	bodyPrefix = []byte("b/")
	// quarPrefix keeps records set aside because they cannot be read (Quarantine): an operator
	// may repair one and move it back under metaPrefix. Their bodies are kept too.
	quarPrefix = []byte("q/")
)

// valueThreshold: bodies this big or bigger go to Badger's value log; smaller ones are stored
// inline and count fully against a Badger transaction's size limit.
const valueThreshold = 64 << 10

// ErrClosed is returned for writes after Close.
var ErrClosed = errors.New("spool closed")

// ErrNotFound is returned by Body for an unknown id (message.ErrNotInSpool, so the queue can
// recognise it without importing the spool).
var ErrNotFound = message.ErrNotInSpool

// Spool is a Badger-backed message store. Messages that share a body (the recipients of one
// SMTP transaction) store it once, under the first message's id; the body is deleted with the
// last message that refers to it.
type Spool struct {
	db     *badger.DB
	refsMu sync.Mutex
	// refs counts the messages referring to each body shared by more than one (rebuilt by
	// Scan). A body absent from it has exactly one: the usual case, one recipient per
	// transaction, then costs no entry at all (a million queued messages would otherwise hold
	// a million entries).
	refs   map[message.Key]int32
	bodies *bodyCache // the newest bodies, for first delivery attempts (bodycache.go)
	log    *slog.Logger
	reqs   chan *request
	mu     sync.RWMutex // guards closed against sends on reqs
	closed bool
	// failed is set when a commit or its sync failed: what is on disk is then uncertain, so
	// the spool refuses every later write (reception answers 451) until a restart.
	failed atomic.Pointer[error]
	done   chan struct{}
	gcStop chan struct{}
	space  *space
	obs    CommitObserver
	// pending holds the record of each Update sent to the committer and not yet committed, so
	// that Get sees every Update sent before it (the queue reads a record again when its
	// message comes due, and a retry may come due before its own Update is written).
	pendMu  sync.Mutex
	pending map[message.Key][]byte
	// unsynced holds one token per Delete sent to the committer and not yet synced; the
	// committer takes it back after the sync. Its capacity bounds how many finished messages a
	// crash can bring back (and deliver again): see Delete.
	unsynced chan struct{}
	// vlogSize is Badger's value-log file size: what one transaction may write there (commit).
	vlogSize int64
	// sync makes committed transactions durable: db.Sync (an I/O seam, so a test can make a
	// sync fail the way a disk does).
	sync func() error
}

type op struct {
	key, val []byte // val nil: delete
}

type request struct {
	ops  []op
	done chan error // nil: nobody waits (state updates, deletes)
	del  bool       // a Delete: holds an unsynced token until its sync
	upd  bool       // an Update of the record of the message id, held in Spool.pending
	id   message.Key
}

// Options configure OpenContext.
type Options struct {
	Path string
	// MinFree is the free-space reserve in bytes (spool.min_free); 0 means DefaultMinFree.
	MinFree int64
	// MaxBody is the largest body Put must store (smtp.max_message_size); it sizes Badger's
	// value-log files. 0 means 64 MiB.
	MaxBody int64
	Log     *slog.Logger
	// Observer is told about every group commit; nil: not measured.
	Observer CommitObserver
	// MaxUnsyncedDeletes bounds the deletes sent but not yet synced; 0 means
	// DefaultMaxUnsyncedDeletes (see Delete).
	MaxUnsyncedDeletes int
	// WrapSync, when set, wraps the sync that makes each group commit durable (Badger's
	// db.Sync): an I/O seam through which a test makes a sync fail the way a disk does.
	WrapSync func(sync func() error) func() error
}

// DefaultMaxUnsyncedDeletes is how many deletes may wait for their sync before Delete blocks:
// at most this many finished messages (plus the deliveries in flight) come back after a crash.
// A group commit takes a few milliseconds, so this allows tens of thousands of deletes a
// second before it slows delivery.
const DefaultMaxUnsyncedDeletes = 128

// CommitObserver is told about each group commit: how long it took (transactions and syncs)
// and how many writes it gathered. It runs on the committer goroutine and must be quick.
type CommitObserver interface {
	Commit(d time.Duration, writes int)
}

// Open opens (creating if needed) the spool at path with the default reserve.
func Open(path string, log *slog.Logger) (*Spool, error) {
	return OpenContext(context.Background(), Options{Path: path, Log: log})
}

// OpenContext opens (creating if needed) the spool. When the disk lacks room for what opening
// writes (see waitForRoom) it waits, logging why, until there is room or ctx is done.
func OpenContext(ctx context.Context, o Options) (*Spool, error) {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	if o.MinFree <= 0 {
		o.MinFree = DefaultMinFree
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 64 << 20
	}
	if o.MaxUnsyncedDeletes <= 0 {
		o.MaxUnsyncedDeletes = DefaultMaxUnsyncedDeletes
	}
	vlogSize := valueLogFileSize(o.MaxBody)
	if need := badgerNeed(vlogSize); o.MinFree < need {
		log.Warn("spool.min_free is below what Badger may write on its own; a full disk can crash the relay",
			"min_free", o.MinFree, "badger_need", need)
	}
	if err := waitForRoom(ctx, o.Path, o.MinFree, vlogSize, log); err != nil {
		return nil, err
	}
	opts := badger.DefaultOptions(o.Path).
		WithSyncWrites(false). // we sync once per group commit, see the package comment
		WithLogger(badgerLogger{log}).
		WithNumVersionsToKeep(1).
		WithValueThreshold(valueThreshold). // big bodies go to the value log, keeping the LSM small
		WithCompactL0OnClose(true).
		// The reserve is computed from these (space.go), so they are set, not inherited.
		WithMemTableSize(memTableSize).
		WithNumMemtables(numMemtables).
		WithNumLevelZeroTables(numLevelZeroTables).
		WithBaseLevelSize(baseLevelSize).
		WithValueLogFileSize(vlogSize).
		WithBlockCacheSize(blockCacheSize).
		// Compaction memory: a table builder allocates twice its table's size, a compaction
		// runs up to 8 + its splits builders, and with Badger's defaults (4 compactors, 2 MiB
		// tables doubling on every level below the base) the deep compactions of a large spool
		// held over a GiB of builders. Two compactors and 1 MiB tables on every level keep a
		// million queued messages under 1 GiB of RSS (docs/performance.md).
		WithNumCompactors(2).
		WithBaseTableSize(1 << 20)
	opts.TableSizeMultiplier = 1
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open spool %s: %w", o.Path, err)
	}
	s := &Spool{db: db, log: log, refs: map[message.Key]int32{}, bodies: newBodyCache(), pending: map[message.Key][]byte{}, reqs: make(chan *request, 4096), done: make(chan struct{}), gcStop: make(chan struct{}),
		space: newSpace(o.Path, o.MinFree, log), obs: o.Observer,
		unsynced: make(chan struct{}, o.MaxUnsyncedDeletes), vlogSize: vlogSize}
	s.sync = db.Sync
	if o.WrapSync != nil {
		s.sync = o.WrapSync(db.Sync)
	}
	go s.commitLoop()
	go s.gcLoop()
	return s, nil
}

// Room reports whether n more bytes can be accepted: nil while free space minus n stays at or
// above the reserve (spool.min_free), else ErrInsufficientStorage (452 4.3.1) with the numbers
// as its cause. It costs a few atomic loads; free space is read from the kernel at most every
// 100 ms. Reception calls it at MAIL and before handing a message over.
func (s *Spool) Room(n int64) error { return s.space.room(n) }

// Stats returns the free-space counters.
func (s *Spool) Stats() Stats {
	st := s.space.stats()
	st.Failed = s.failed.Load() != nil
	return st
}

// Put stores messages sharing one body atomically (all or none) and returns once they are
// synced to disk. It is what stands behind every 250. It sets each message's BodyID.
func (s *Spool) Put(msgs []*message.Message, body []byte) error {
	return s.PutBatches([]message.Batch{{Msgs: msgs, Body: body}})
}

// PutBatches stores several batches, each a body and the messages that share it, as one write:
// all or none, synced before it returns. Reception uses it for a transaction split by
// recipient domain, so a failure of any batch leaves nothing of the transaction spooled.
// Batches whose bodies are equal (no hook changed them differently) store the body once.
// It sets each message's BodyID.
func (s *Spool) PutBatches(batches []message.Batch) error {
	type body struct {
		id   message.ID
		data []byte
		refs int32
	}
	var bodies []body
	var size, inline int64 // inline: what Badger counts against one transaction's limit
	r := &request{done: make(chan error, 1)}
	for _, b := range batches {
		if len(b.Msgs) == 0 {
			continue
		}
		bi := -1
		for i := range bodies {
			if sameBytes(bodies[i].data, b.Body) {
				bi = i
				break
			}
		}
		if bi < 0 {
			bodies = append(bodies, body{id: b.Msgs[0].ID, data: b.Body})
			bi = len(bodies) - 1
			r.ops = append(r.ops, op{bodyKey(b.Msgs[0].ID), b.Body})
			size += int64(len(b.Body) + recordOverhead)
			if len(b.Body) < valueThreshold {
				inline += int64(len(b.Body) + recordOverhead)
			}
		}
		bodies[bi].refs += int32(len(b.Msgs))
		for _, m := range b.Msgs {
			m.BodyID = bodies[bi].id
			v, err := encode(m)
			if err != nil {
				return err
			}
			r.ops = append(r.ops, op{metaKey(m.ID), v})
			size += int64(len(v) + recordOverhead)
			inline += int64(len(v) + recordOverhead)
		}
	}
	if len(bodies) == 0 {
		return nil
	}
	// Refuse rather than hand Badger a write the disk may not hold: that would be a SIGBUS.
	if err := s.space.reserve(size); err != nil {
		return err
	}
	defer s.space.done(size)
	s.refsMu.Lock()
	for _, b := range bodies {
		if b.refs > 1 { // a body's id is its first message's, new: it has no entry yet
			s.refs[refKey(b.id)] = b.refs
		}
	}
	s.refsMu.Unlock()
	var err error
	if inline > s.db.MaxBatchSize()/2 {
		err = s.putInTwoSteps(r.ops)
	} else if err = s.send(r); err == nil {
		err = <-r.done
	}
	if err != nil {
		for _, b := range bodies {
			s.unref(b.id, b.refs)
		}
		return err
	}
	for _, b := range bodies {
		s.bodies.add(b.id, b.data)
	}
	return nil
}

// putInTwoSteps writes a transaction whose bodies do not fit one Badger transaction (groups of
// many recipient domains whose bodies differ, each under the value threshold, so stored inline):
// every body in a request of its own first, then every meta record in one request. The meta
// records are what makes a message exist (Scan reads only them), so the transaction is still
// all or nothing: when a step fails the bodies written are deleted again, and a body left by a
// crash between the steps is removed by the next Scan (sweepOrphans).
func (s *Spool) putInTwoSteps(ops []op) error {
	metas := &request{done: make(chan error, 1)}
	var sent []*request
	var err error
	for _, o := range ops {
		if !bytes.HasPrefix(o.key, bodyPrefix) {
			metas.ops = append(metas.ops, o)
			continue
		}
		if err != nil {
			continue
		}
		br := &request{ops: []op{o}, done: make(chan error, 1)}
		if err = s.send(br); err == nil {
			sent = append(sent, br)
		}
	}
	var written []op
	for _, br := range sent {
		if e := <-br.done; e != nil {
			if err == nil {
				err = e
			}
		} else {
			written = append(written, op{key: br.ops[0].key}) // val nil: a delete, if we must undo
		}
	}
	if err == nil {
		if err = s.send(metas); err == nil {
			err = <-metas.done
		}
	}
	if err != nil && len(written) > 0 {
		_ = s.send(&request{ops: written}) // a crash before these deletes is swept by Scan
	}
	return err
}

// sameBytes reports whether a and b hold the same bytes; the same slice is the common case
// (no hook changed the body) and costs no comparison.
func sameBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	return bytes.Equal(a, b)
}

// unref drops n references to a body and reports whether none is left. A body without an
// entry has one reference.
func (s *Spool) unref(id message.ID, n int32) bool {
	k := refKey(id)
	s.refsMu.Lock()
	defer s.refsMu.Unlock()
	left, shared := s.refs[k]
	if !shared {
		left = 1
	}
	left -= n
	switch {
	case left <= 0:
		delete(s.refs, k)
		return true
	case left == 1:
		delete(s.refs, k)
	default:
		s.refs[k] = left
	}
	return false
}

// refKey is the body reference map's key for a body id.
func refKey(id message.ID) message.Key { return id.MapKey() }

// Update rewrites a message's envelope, meta and scheduling state. It does not wait for the
// disk: losing an update to a crash only means an earlier retry with a lower attempt count.
func (s *Spool) Update(m *message.Message) error {
	v, err := encode(m)
	if err != nil {
		return err
	}
	r := &request{ops: []op{{metaKey(m.ID), v}}, upd: true, id: m.ID.MapKey()}
	s.pendMu.Lock()
	s.pending[r.id] = v
	s.pendMu.Unlock()
	if err := s.send(r); err != nil {
		s.settle(r)
		return err
	}
	return nil
}

// settle forgets an Update's pending record once it is committed (or failed), unless a later
// Update of the same message replaced it.
func (s *Spool) settle(r *request) {
	v := r.ops[0].val
	s.pendMu.Lock()
	if cur, ok := s.pending[r.id]; ok && len(cur) > 0 && &cur[0] == &v[0] {
		delete(s.pending, r.id)
	}
	s.pendMu.Unlock()
}

// Delete removes a message, and its body when no other message shares it. It does not wait for
// the disk: the delete joins the next commit that someone waits for (a Put), or is committed on
// its own within lazyCommitDelay. A crash before that commit brings the message back at the
// next start, to be delivered a second time, never lost.
//
// What bounds that window is a count, not a time (a commit takes what the disk takes): at most
// MaxUnsyncedDeletes deletes wait for their commit at once, and when half of them wait they are
// committed without waiting for a Put; one more blocks its caller (a delivery connection) until
// a commit frees a place, so delivery cannot run ahead of a slow disk. After a crash at most
// MaxUnsyncedDeletes messages, plus the deliveries in flight at that moment, are delivered again.
func (s *Spool) Delete(m *message.Message) error {
	s.unsynced <- struct{}{}
	s.pendMu.Lock()
	delete(s.pending, m.ID.MapKey())
	s.pendMu.Unlock()
	ops := []op{{key: metaKey(m.ID)}}
	if s.unref(m.BodyID, 1) {
		s.bodies.drop(m.BodyID)
		ops = append(ops, op{key: bodyKey(m.BodyID)})
	}
	if err := s.send(&request{ops: ops, del: true}); err != nil {
		<-s.unsynced
		return err
	}
	return nil
}

// Flush waits until every write queued before it is synced.
func (s *Spool) Flush() error {
	r := &request{done: make(chan error, 1)}
	if err := s.send(r); err != nil {
		return err
	}
	return <-r.done
}

func (s *Spool) send(r *request) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.Failed(); err != nil {
		return err
	}
	s.reqs <- r
	return nil
}

// Failed is nil until a commit or its sync fails; from then on, until a restart, it says why
// every write is refused. Finished messages cannot be deleted any more, so whatever is
// delivered from then on is delivered again after the restart: the queue stops delivering when
// it sees this (one atomic load, cheap enough for every attempt).
func (s *Spool) Failed() error {
	if e := s.failed.Load(); e != nil {
		return fmt.Errorf("spool unhealthy since a failed write: %w", *e)
	}
	return nil
}

// Body returns a message's body: from memory while it is among the newest (bodycache.go), else
// from Badger. The caller must not write into it.
func (s *Spool) Body(m *message.Message) ([]byte, error) {
	id := m.BodyID
	if b, ok := s.bodies.get(id); ok {
		return b, nil
	}
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(bodyKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		out, err = it.ValueCopy(nil)
		return err
	})
	return out, err
}

// Get returns the spooled record of the message id: the queue reads it again when a message
// it held in brief (message.Sched) comes due, or an operator inspects it. message.ErrNotInSpool
// when there is none.
func (s *Spool) Get(id message.ID) (*message.Message, error) {
	s.pendMu.Lock()
	v, ok := s.pending[id.MapKey()]
	s.pendMu.Unlock()
	if ok {
		return decodeRecord(metaKey(id), v)
	}
	var m *message.Message
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(metaKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) (err error) {
			m, err = decodeRecord(item.Key(), v)
			return err
		})
	})
	return m, err
}

// Scan calls fn for every spooled message, oldest first (ids sort by creation time), and
// counts body references. Call it once at start-up, before any Delete. A record that cannot be
// decoded is reported to bad and set aside with its body (see Quarantine), never silently
// dropped; it does not keep the scan from sweeping the bodies no record refers to.
func (s *Spool) Scan(fn func(*message.Message) error, bad func(key []byte, err error)) error {
	return s.scan(func(key, v []byte) (message.ID, error) {
		m, err := decodeRecord(key, v)
		if err != nil {
			return "", err
		}
		return m.BodyID, fn(m)
	}, bad)
}

// ScanSched is Scan for what scheduling needs: it decodes only the fields of message.Sched from
// each record, so that start-up with a large queue does not build every message in memory
// (the queue reads a record again with Get when its message comes due).
func (s *Spool) ScanSched(fn func(message.Sched) error, bad func(key []byte, err error)) error {
	return s.scan(func(key, v []byte) (message.ID, error) {
		m, err := decodeSched(v)
		if err != nil {
			return "", errDecode{err}
		}
		if err := checkID(key, m.ID); err != nil {
			return "", errDecode{err}
		}
		return m.BodyID, fn(m)
	}, bad)
}

// errDecode marks a record scan could not read (as opposed to an error of the callback).
type errDecode struct{ error }

func (e errDecode) Unwrap() error { return e.error }

// Unreadable tells the queue, which does not import the spool, that reading the record again
// cannot succeed: it is damaged, not a read that failed for now.
func (e errDecode) Unreadable() bool { return true }

// Quarantine sets aside the record of a message that cannot be read (Get says Unreadable): it
// moves to the quarantine prefix, out of every later scan, so that it is reported once and
// nothing tries it again. Its body stays (its reference is not dropped: the record may share
// it), for an operator to repair the record with. It returns once the move is synced.
func (s *Spool) Quarantine(id message.ID) error {
	var raw []byte
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(metaKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		raw, err = it.ValueCopy(nil)
		return err
	})
	if err != nil {
		return err
	}
	s.pendMu.Lock()
	delete(s.pending, id.MapKey())
	s.pendMu.Unlock()
	return s.write(&request{ops: quarantineOps(metaKey(id), raw), done: make(chan error, 1)})
}

// quarantineOps moves the record under key to the quarantine prefix.
func quarantineOps(key, raw []byte) []op {
	q := append(append([]byte{}, quarPrefix...), key[len(metaPrefix):]...)
	return []op{{key: q, val: raw}, {key: append([]byte{}, key...)}}
}

// bodyNamed is the body id an unreadable record most likely names: the value of its body_id
// field when that much can still be read, else its own id (a body is stored under the id of
// the first message that refers to it, usually the record's own). The orphan sweep keeps it.
func bodyNamed(key, raw []byte) message.ID {
	const field = `"body_id":"`
	if i := bytes.Index(raw, []byte(field)); i >= 0 {
		rest := raw[i+len(field):]
		if j := bytes.IndexByte(rest, '"'); j > 0 && bytes.IndexByte(rest[:j], '\\') < 0 {
			return message.ID(rest[:j])
		}
	}
	return message.ID(key[bytes.IndexByte(key, '/')+1:])
}

// scan runs each for every message record; each returns the record's body id, an errDecode for
// a record it cannot read (reported to bad, skipped), or the callback's error, which ends the
// scan.
func (s *Spool) scan(each func(key, v []byte) (message.ID, error), bad func(key []byte, err error)) error {
	var unreadable []op // quarantineOps of each record the scan could not read
	// Every body's references are counted during the scan (sweepOrphans needs them all); only
	// the shared ones are kept afterwards (see Spool.refs). A body is stored under its first
	// message's id, so most messages own their body: those are listed in a slice (sorted, as
	// the scan yields ids in order) rather than counted in a map, which at a million messages
	// cost more time and memory than the rest of the scan's bookkeeping.
	var r bodyRefs
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = metaPrefix
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var body message.ID
			var cbErr error
			err := item.Value(func(v []byte) error {
				var err error
				body, err = each(item.Key(), v)
				if _, isDecode := err.(errDecode); err != nil && !isDecode {
					cbErr = err
					return nil
				}
				return err
			})
			if cbErr != nil {
				return cbErr
			}
			if err != nil {
				raw, verr := item.ValueCopy(nil)
				if verr != nil {
					return verr
				}
				unreadable = append(unreadable, quarantineOps(item.Key(), raw)...)
				r.add(false, bodyNamed(item.Key(), raw)) // its body is kept, with it
				if bad != nil {
					var d errDecode
					if errors.As(err, &d) {
						err = d.error
					}
					bad(item.KeyCopy(nil), err)
				}
				continue
			}
			r.add(string(item.Key()[len(metaPrefix):]) == string(body), body)
		}
		// The bodies of records set aside before are kept for them.
		o.Prefix, o.PrefetchValues = quarPrefix, true
		qt := txn.NewIterator(o)
		defer qt.Close()
		for qt.Rewind(); qt.Valid(); qt.Next() {
			item := qt.Item()
			if err := item.Value(func(v []byte) error {
				r.add(false, bodyNamed(item.Key(), v))
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	r.done()
	if err == nil && len(unreadable) > 0 {
		// Set aside once: reported by this scan, never again (Quarantine).
		if qerr := s.writeAll(unreadable); qerr != nil {
			s.log.Error("spool: setting unreadable records aside failed; they stay and are reported again at the next start", "err", qerr)
		}
	}
	if err == nil {
		err = s.sweepOrphans(&r)
	}
	s.refsMu.Lock()
	for k, n := range r.others {
		if r.owned(k) {
			n++
		}
		if n > 1 {
			s.refs[k] += n
		}
	}
	s.refsMu.Unlock()
	return err
}

// bodyRefs counts the references to bodies found by a scan: owners lists the bodies stored
// under the id of a message that refers to them, others counts the references of messages
// sharing another message's body.
type bodyRefs struct {
	owners []message.Key
	others map[message.Key]int32
}

// add counts a reference to body, by the message it is stored under (owner) or another.
func (r *bodyRefs) add(owner bool, body message.ID) {
	if owner {
		r.owners = append(r.owners, refKey(body))
		return
	}
	if r.others == nil {
		r.others = map[message.Key]int32{}
	}
	r.others[refKey(body)]++
}

// done sorts owners for owned (a no-op in the usual case: spool ids sort as their keys).
func (r *bodyRefs) done() {
	if !slices.IsSortedFunc(r.owners, compareKeys) {
		slices.SortFunc(r.owners, compareKeys)
	}
}

func compareKeys(a, b message.Key) int { return bytes.Compare(a[:], b[:]) }

func (r *bodyRefs) owned(k message.Key) bool {
	_, found := slices.BinarySearchFunc(r.owners, k, compareKeys)
	return found
}

func (r *bodyRefs) referenced(k message.Key) bool { return r.others[k] > 0 || r.owned(k) }

// sweepOrphans deletes bodies no message refers to: what a crash between the two steps of
// putInTwoSteps leaves. Only after a complete scan, when every reference has been counted.
func (s *Spool) sweepOrphans(r *bodyRefs) error {
	var del []op
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix, o.PrefetchValues = bodyPrefix, false
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			if !r.referenced(refKey(message.ID(k[len(bodyPrefix):]))) {
				del = append(del, op{key: k})
			}
		}
		return nil
	})
	if err != nil || len(del) == 0 {
		return err
	}
	s.log.Warn("spool: deleting bodies no message refers to (left by a crash while spooling)", "bodies", len(del))
	return s.writeAll(del)
}

// writeAll commits ops in requests that each fit one Badger transaction, waiting for each.
func (s *Spool) writeAll(ops []op) error {
	for len(ops) > 0 {
		n := min(len(ops), 1000) // even: quarantineOps' pairs are never split
		if err := s.write(&request{ops: ops[:n], done: make(chan error, 1)}); err != nil {
			return err
		}
		ops = ops[n:]
	}
	return nil
}

// Close flushes pending writes and closes the database.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.mu.Unlock()
	<-s.done
	close(s.gcStop)
	return s.db.Close()
}

func (s *Spool) commitLoop() {
	defer close(s.done)
	batch := make([]*request, 0, 256)
	// lazy holds deletes and state updates nobody waits for, not yet committed: they join the
	// next commit that someone waits for, or are committed on their own once lazyCommitDelay
	// has passed or half the unsynced-delete tokens are theirs (see commit).
	var lazy []*request
	lazyDels := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var r *request
		var ok bool
		if len(lazy) > 0 {
			select {
			case r, ok = <-s.reqs:
			case <-timer.C:
				s.observe(lazy)
				clear(lazy)
				lazy, lazyDels = lazy[:0], 0
				continue
			}
		} else {
			r, ok = <-s.reqs
		}
		if !ok {
			if len(lazy) > 0 {
				s.observe(lazy)
			}
			return
		}
		batch = append(batch[:0], r)
	gather:
		for len(batch) < cap(batch) {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break gather
				}
				batch = append(batch, r)
			default:
				break gather
			}
		}
		wait := false
		for _, r := range batch {
			if r.done != nil {
				wait = true
			}
			if r.del {
				lazyDels++
			}
		}
		wasLazy := len(lazy) > 0
		lazy = append(lazy, batch...)
		if !wait && 2*lazyDels < cap(s.unsynced) {
			if !wasLazy {
				timer.Reset(lazyCommitDelay)
			}
			continue
		}
		s.observe(lazy)
		clear(lazy) // no request outlives its commit here
		lazy, lazyDels = lazy[:0], 0
	}
}

// lazyCommitDelay bounds how long a delete or state update waits for a commit that someone
// waits for (a Put) before it is committed on its own.
const lazyCommitDelay = 20 * time.Millisecond

// observe commits batch, timed for the observer when there is one.
func (s *Spool) observe(batch []*request) {
	if s.obs == nil {
		s.commit(batch)
		return
	}
	start := time.Now()
	s.commit(batch)
	s.obs.Commit(time.Since(start), len(batch))
}

// commit writes a batch in as few transactions as Badger's size limit allows and answers the
// waiters. A request is all-or-nothing: when one fails (too big alone, or invalid) the
// transaction is rebuilt without it, so none of its keys is written; the others still commit.
//
// Each transaction is synced (db.Sync: Badger's write-ahead log and its value log) before the
// next one starts and before any waiter is answered.
//
// Deletes and state updates are not committed when they come (see commitLoop): they ride in the
// next Put's transaction, so that under load they cost no sync of their own. A delete's token
// is given back only after its commit, so what a crash can bring back is still bounded by
// MaxUnsyncedDeletes.
//
// Badger addresses its value log with 32-bit offsets and refuses, whole, a write that would end
// past 4 GiB in one file. Big bodies that arrive together (65 of 64 MiB) would make such a
// write and fail every one of their Puts, so a transaction takes at most one value-log file's
// worth of them (vlogSize, under 2 GiB, which is also the most a file holds before a write).
func (s *Spool) commit(batch []*request) {
	results := make([]error, len(batch))
	var included []int // requests in the open transaction
	var vlog int64     // what the open transaction writes to the value log
	txn := s.db.NewTransaction(true)
	rebuild := func() {
		txn.Discard()
		txn = s.db.NewTransaction(true)
		for _, i := range included {
			_ = apply(txn, batch[i]) // fitted before, fits again
		}
	}
	flush := func() {
		var err error
		if err = s.Failed(); err != nil {
			// A request sent before a sync failed (in this batch or an earlier one) must not be
			// told it is on disk: pages whose write-back failed are dropped, a later fsync does
			// not report it, and replay stops at the first damaged log entry, taking every later
			// transaction with it. Its waiter is told; the failure was logged once already.
			txn.Discard()
		} else {
			if err = txn.Commit(); err == nil {
				err = s.sync()
			}
			if err != nil {
				// Any commit error, not only a failed sync, leaves what is on disk uncertain:
				// Badger may have written part of the transaction, and a Delete in it has
				// already dropped its body's reference in memory (Delete), so a later write
				// could delete a body still referred to, or keep one for ever. Only the scan
				// of a restart counts the references again.
				s.failed.Store(&err)
				s.log.Error("spool write failed: new mail is refused and deliveries stop until a restart",
					"err", err, "requests", len(included))
				err = s.Failed()
			}
		}
		if err != nil {
			for _, i := range included {
				results[i] = err
			}
		}
		included, vlog = included[:0], 0
		txn = s.db.NewTransaction(true)
	}
	for i := 0; i < len(batch); {
		n := valueLogBytes(batch[i])
		if len(included) > 0 && vlog+n > s.vlogSize {
			flush()
			continue
		}
		err := apply(txn, batch[i])
		if err == nil {
			included = append(included, i)
			vlog += n
			i++
			continue
		}
		rebuild() // drop whatever part of batch[i] went in
		if errors.Is(err, badger.ErrTxnTooBig) && len(included) > 0 {
			flush() // commit what fits, then retry batch[i] in a fresh transaction
			continue
		}
		results[i] = err
		i++
	}
	if len(included) > 0 {
		flush()
	}
	txn.Discard()
	for i, r := range batch {
		if r.upd {
			s.settle(r)
		}
		if r.del {
			<-s.unsynced // synced, or failed and reported: no longer pending
		}
		if r.done != nil {
			r.done <- results[i]
		} else if results[i] != nil && s.failed.Load() == nil {
			// A write refused because the spool has failed is not logged again per write:
			// the failure was, once.
			s.log.Error("spool background write failed", "err", results[i])
		}
	}
}

// valueLogBytes bounds what r writes to Badger's value log: its values of valueThreshold or more.
func valueLogBytes(r *request) int64 {
	var n int64
	for _, o := range r.ops {
		if len(o.val) >= valueThreshold {
			n += int64(len(o.key) + len(o.val) + recordOverhead)
		}
	}
	return n
}

func apply(txn *badger.Txn, r *request) error {
	for _, o := range r.ops {
		var err error
		if o.val == nil {
			err = txn.Delete(o.key)
		} else {
			err = txn.Set(o.key, o.val)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// decodeRecord decodes a message record stored under key. A record must name itself: Delete
// and Update address a message by the id inside it, so a record whose id differs from its key
// could never be deleted and would be delivered again after every restart.
func decodeRecord(key, v []byte) (*message.Message, error) {
	var m message.Message
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, errDecode{err}
	}
	if err := checkID(key, m.ID); err != nil {
		return nil, errDecode{err}
	}
	return &m, nil
}

func checkID(key []byte, id message.ID) error {
	if id == "" {
		return errors.New("record without id")
	}
	if string(key) != string(metaPrefix)+string(id) {
		return fmt.Errorf("record id %q does not match its key", id)
	}
	return nil
}

// gcLoop reclaims value-log space left by delivered messages, and watches free space so the
// reserve's diagnostics and Stats follow it on an idle relay. Below the reserve GC runs every
// minute instead of every five: delivered mail only gives its value-log space back through GC.
func (s *Spool) gcLoop() {
	t := time.NewTicker(monitorInterval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-s.gcStop:
			return
		case <-t.C:
			s.space.refresh(true)
			every := 5 * time.Minute
			if s.space.below.Load() {
				every = time.Minute
			}
			if time.Since(last) < every {
				continue
			}
			last = time.Now()
			for s.db.RunValueLogGC(0.5) == nil {
			}
		}
	}
}

func metaKey(id message.ID) []byte { return append(append([]byte{}, metaPrefix...), id...) }
func bodyKey(id message.ID) []byte { return append(append([]byte{}, bodyPrefix...), id...) }

// badgerLogger routes Badger's chatter to slog, keeping only warnings and errors.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error("badger: " + fmt.Sprintf(f, a...)) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn("badger: " + fmt.Sprintf(f, a...)) }
func (b badgerLogger) Infof(string, ...any)        {}
func (b badgerLogger) Debugf(string, ...any)       {}
