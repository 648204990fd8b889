// Package webhook sends the relay's log records to an HTTP endpoint ([logs.webhook]) in
// batches, from a durable on-disk queue, so that no record is lost across restarts, kill -9
// or a receiver outage.
//
// Records are appended (one write(2) each, like the log file) to numbered segment files
// (0000000000000001.jsonl, ...) in the webhook's directory; a sender goroutine reads them in
// order and POSTs each batch as a JSON array. The position of the next record is a cursor file
// (segment, offset) written atomically and fsynced after every acknowledged batch. Before a
// batch is sent, its end is written to the cursor too (the batch "in flight"): after a crash the
// same byte range is sent again with the same X-Wasmta-Batch-Id, so a receiver that remembers
// the batch ids it has processed sees every record exactly once. Without that deduplication a
// receiver may see the one batch that was in flight at a crash (or whose answer was lost to a
// timeout) twice, never more, and never a record out of a different batch twice.
//
// Limits: records the kernel had not written to disk are lost with the machine (power loss; a
// killed process loses nothing); a receiver that never answers 2xx stops delivery (the backlog
// grows up to max_backlog, then new records are dropped from the webhook queue, never from the
// log file, and counted in diagnostics).
package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// BatchIDHeader carries the batch's id: the same for every try of the same records, across
// restarts; receivers deduplicate on it.
const BatchIDHeader = "X-Wasmta-Batch-Id"

// Defaults of Options.
const (
	DefaultBatchSize        = 100
	DefaultTimeout          = 30 * time.Second
	DefaultRetryInterval    = time.Second
	DefaultMaxRetryInterval = 5 * time.Minute
	DefaultMaxBacklog       = 1 << 30
	// DefaultSegmentSize bounds one segment file: a segment is deleted once every record in
	// it was acknowledged, so this is also the disk the sent records hold at most.
	DefaultSegmentSize = 16 << 20
	// maxBatchBytes bounds one request body (a record larger than it goes alone).
	maxBatchBytes = 4 << 20
	segExt        = ".jsonl"
	cursorFile    = "cursor"
	idFile        = "id"
)

// Options configure a Hook.
type Options struct {
	Dir              string // the queue's directory
	URL              string
	BatchSize        int // records per request at most
	Timeout          time.Duration
	Headers          map[string]string
	BearerToken      string
	RetryInterval    time.Duration // first wait after a failure; doubles up to MaxRetryInterval
	MaxRetryInterval time.Duration
	MaxBacklog       int64 // bytes of unsent records kept on disk
	SegmentSize      int64
	Client           *http.Client
	Diag             *slog.Logger
}

// Hook is the queue and its sender.
type Hook struct {
	opt Options
	id  string // this queue's identity, part of every batch id

	mu      sync.Mutex // appends
	seg     *os.File
	segSize int64
	dropped int64

	writeSeg atomic.Int64 // the segment being appended to
	backlog  atomic.Int64 // bytes in segment files
	// sent is the bytes of those files already acknowledged: the cursor's offset in its
	// segment, and sent segments not deleted (undeleted). max_backlog bounds the rest, the
	// unsent records: a segment is deleted only once the writer has moved past it, so the
	// sent records of the segment being appended to are still on disk.
	sent      atomic.Int64
	undeleted int64 // sender only (and Open)
	wake      chan struct{}

	// For Stats (the metrics): batches and records the receiver accepted, POSTs it did not,
	// and whether the last POST failed.
	batches, records, failedPosts atomic.Int64
	failing                       atomic.Bool

	cur    cursor // sender only
	cancel context.CancelFunc
	done   chan struct{}
}

type cursor struct {
	Segment int64 `json:"segment"`
	Offset  int64 `json:"offset"`
	// End > Offset: the records in [Offset, End) are in flight; after a restart exactly these
	// are sent again, under the same batch id.
	End int64 `json:"end,omitempty"`
}

// Open opens (creating) the queue in opt.Dir. Nothing is sent before Start.
func Open(opt Options) (*Hook, error) {
	if opt.BatchSize <= 0 {
		opt.BatchSize = DefaultBatchSize
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.RetryInterval <= 0 {
		opt.RetryInterval = DefaultRetryInterval
	}
	if opt.MaxRetryInterval < opt.RetryInterval {
		opt.MaxRetryInterval = max(DefaultMaxRetryInterval, opt.RetryInterval)
	}
	if opt.MaxBacklog <= 0 {
		opt.MaxBacklog = DefaultMaxBacklog
	}
	if opt.SegmentSize <= 0 {
		opt.SegmentSize = DefaultSegmentSize
	}
	if opt.Client == nil {
		opt.Client = &http.Client{}
	}
	if opt.Diag == nil {
		opt.Diag = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opt.Dir, 0o750); err != nil {
		return nil, err
	}
	h := &Hook{opt: opt, wake: make(chan struct{}, 1)}
	var err error
	if h.id, err = queueID(opt.Dir); err != nil {
		return nil, err
	}
	if h.cur, err = readCursor(opt.Dir); err != nil {
		return nil, err
	}
	segs, err := h.segments()
	if err != nil {
		return nil, err
	}
	var total int64
	for _, s := range segs {
		if st, err := os.Stat(h.segPath(s)); err == nil {
			total += st.Size()
		}
	}
	h.backlog.Store(total)
	next := max(h.cur.Segment, 1)
	if len(segs) > 0 {
		last := segs[len(segs)-1]
		next = max(next, last)
		if last == next && !endsWithNewline(h.segPath(last)) {
			// A crash cut the last record short: leave that segment to the sender, which
			// skips the broken tail, and write whole records to a new one.
			next++
		}
	}
	if err := h.openSegment(next); err != nil {
		return nil, err
	}
	if h.cur.Segment == 0 {
		h.cur.Segment = next
		if len(segs) > 0 {
			h.cur.Segment = segs[0]
		}
	}
	for _, s := range segs {
		// Sent already: a crash came between moving the cursor on and deleting the file.
		if s < h.cur.Segment {
			if st, err := os.Stat(h.segPath(s)); err == nil {
				if os.Remove(h.segPath(s)) == nil {
					h.backlog.Add(-st.Size())
				} else {
					h.undeleted += st.Size()
				}
			}
		}
	}
	h.sent.Store(h.undeleted + h.cur.Offset)
	return h, nil
}

// queueID reads the queue's random identity, creating it once: batch ids stay unique even if
// the directory is deleted and the segment numbers start again.
func queueID(dir string) (string, error) {
	p := filepath.Join(dir, idFile)
	if b, err := os.ReadFile(p); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b)), nil
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(r[:])
	return id, writeAtomic(dir, idFile, []byte(id+"\n"))
}

func readCursor(dir string) (cursor, error) {
	var c cursor
	b, err := os.ReadFile(filepath.Join(dir, cursorFile))
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil || c.Segment < 0 || c.Offset < 0 || (c.End != 0 && c.End < c.Offset) {
		// Written atomically, so this is damage from outside: starting over could send
		// everything twice, so refuse and let the operator decide.
		return c, fmt.Errorf("webhook cursor %s is damaged (%q); delete it to resend every queued record", filepath.Join(dir, cursorFile), b)
	}
	return c, nil
}

// writeAtomic writes name in dir through a temporary file, fsyncs it and the directory.
func writeAtomic(dir, name string, b []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		return err
	}
	return nil
}

func (h *Hook) segPath(n int64) string {
	return filepath.Join(h.opt.Dir, fmt.Sprintf("%016d%s", n, segExt))
}

// segments lists the segment numbers on disk, in order.
func (h *Hook) segments() ([]int64, error) {
	ents, err := os.ReadDir(h.opt.Dir)
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), segExt)
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(name, 10, 64); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func endsWithNewline(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return true
	}
	var b [1]byte
	_, err = f.ReadAt(b[:], st.Size()-1)
	return err == nil && b[0] == '\n'
}

func (h *Hook) openSegment(n int64) error {
	f, err := os.OpenFile(h.segPath(n), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if h.seg != nil {
		h.seg.Close()
	}
	h.seg, h.segSize = f, st.Size()
	h.writeSeg.Store(n) // after the last write to the previous segment: see next
	return nil
}

// Append queues one record (a JSON object and its newline) with one write(2). It never
// blocks on the network. When the backlog is full the record is dropped from the webhook
// queue (it is still in the log file) and counted.
func (h *Hook) Append(line []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seg == nil {
		return
	}
	n := int64(len(line))
	if h.backlog.Load()-h.sent.Load()+n > h.opt.MaxBacklog {
		h.dropped++
		if h.dropped == 1 || h.dropped%10000 == 0 {
			h.opt.Diag.Error("logs.webhook: backlog full (logs.webhook.max_backlog); records are not queued for the webhook (they are in the log file)", "dropped", h.dropped, "max_backlog", h.opt.MaxBacklog)
		}
		return
	}
	if h.segSize > 0 && h.segSize+n > h.opt.SegmentSize {
		if err := h.openSegment(h.writeSeg.Load() + 1); err != nil {
			h.opt.Diag.Error("logs.webhook: cannot start a new segment; appending to the current one", "err", err)
		}
	}
	w, err := h.seg.Write(line)
	if err != nil && w > 0 {
		// Part of the record went in (a full disk). Left there it would run into the next
		// record, and the reader would see one broken line and lose both: cut it off, or, if
		// that fails too, write the next records to a new segment (the reader skips a
		// segment's broken tail, as after a crash).
		if terr := h.seg.Truncate(h.segSize); terr == nil {
			w = 0
		} else {
			h.segSize += int64(w) // the part stays in this segment's files, counted in the backlog
			h.backlog.Add(int64(w))
			w = 0
			if oerr := h.openSegment(h.writeSeg.Load() + 1); oerr != nil {
				h.opt.Diag.Error("logs.webhook: cannot cut a partly written record off the queue", "err", terr, "new_segment_err", oerr)
			}
		}
	}
	h.segSize += int64(w)
	h.backlog.Add(int64(w))
	if err != nil {
		h.opt.Diag.Error("logs.webhook: writing the queue failed; record not queued for the webhook", "err", err)
	}
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Stats are the queue's counters since it was opened, for the metrics.
type Stats struct {
	BacklogBytes int64 // bytes in the queue's segment files (a segment leaves once all sent)
	Batches      int64 // batches the receiver accepted (2xx)
	Records      int64 // records in them
	FailedPosts  int64 // POSTs that failed (connection error, timeout, non-2xx); retried
	Dropped      int64 // records not queued because the backlog was full (max_backlog)
	Failing      bool  // the last POST failed
}

// Stats returns the counters.
func (h *Hook) Stats() Stats {
	h.mu.Lock()
	dropped := h.dropped
	h.mu.Unlock()
	return Stats{BacklogBytes: h.backlog.Load(), Batches: h.batches.Load(), Records: h.records.Load(),
		FailedPosts: h.failedPosts.Load(), Dropped: dropped, Failing: h.failing.Load()}
}

// Start runs the sender until Close.
func (h *Hook) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		defer func() {
			if r := recover(); r != nil {
				h.opt.Diag.Error("logs.webhook: sender stopped by a panic; records stay queued until restart", "panic", r)
			}
		}()
		h.run(ctx)
	}()
}

// Close stops the sender (a request in progress is abandoned; its batch is sent again at the
// next start) and closes the queue. Unsent records stay on disk.
func (h *Hook) Close() error {
	if h.cancel != nil {
		h.cancel()
		<-h.done
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seg == nil {
		return nil
	}
	err := h.seg.Sync()
	err = errors.Join(err, h.seg.Close())
	h.seg = nil
	return err
}

// batch is a byte range of one segment and the records in it.
type batch struct {
	seg        int64
	start, end int64
	records    [][]byte
}

func (b *batch) id(queue string) string {
	return fmt.Sprintf("%s-%d-%d-%d", queue, b.seg, b.start, b.end)
}

func (h *Hook) run(ctx context.Context) {
	poll := time.NewTicker(time.Second) // wake-ups can be missed across a segment switch
	defer poll.Stop()
	for ctx.Err() == nil {
		b, err := h.next()
		if err != nil {
			h.opt.Diag.Error("logs.webhook: reading the queue failed", "err", err)
		}
		if b == nil {
			select {
			case <-ctx.Done():
			case <-h.wake:
			case <-poll.C:
			}
			continue
		}
		if !h.deliver(ctx, b) {
			return
		}
		if err := h.commit(cursor{Segment: b.seg, Offset: b.end}); err != nil {
			h.opt.Diag.Error("logs.webhook: cannot save the cursor; the batch may be sent again after a restart", "err", err)
		}
	}
}

func (h *Hook) commit(c cursor) error {
	b, _ := json.Marshal(c)
	err := writeAtomic(h.opt.Dir, cursorFile, b)
	h.cur = c // the sender goes on from here either way
	h.sent.Store(h.undeleted + c.Offset)
	return err
}

// next returns the batch to send: the one in flight, else up to BatchSize whole records after
// the cursor (its end saved first), or nil when there is nothing yet.
func (h *Hook) next() (*batch, error) {
	for {
		c := h.cur
		if c.End > c.Offset {
			b, err := h.read(c.Segment, c.Offset, c.End-c.Offset, math.MaxInt)
			if err != nil || b == nil || b.end != c.End {
				// The records in flight are gone (segment deleted from outside): skip them.
				h.opt.Diag.Error("logs.webhook: the batch in flight at the last stop is no longer on disk; skipped", "segment", c.Segment, "offset", c.Offset, "err", err)
				if err := h.commit(cursor{Segment: c.Segment, Offset: c.End}); err != nil {
					return nil, err
				}
				continue
			}
			return b, nil
		}
		finished := c.Segment < h.writeSeg.Load() // before reading: see openSegment
		b, err := h.read(c.Segment, c.Offset, maxBatchBytes, h.opt.BatchSize)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if b != nil {
			if err := h.commit(cursor{Segment: b.seg, Offset: b.start, End: b.end}); err != nil {
				return nil, err
			}
			return b, nil
		}
		if !finished {
			return nil, nil
		}
		// Every whole record of this segment was sent: go to the next one on disk.
		segs, err := h.segments()
		if err != nil {
			return nil, err
		}
		nextSeg := int64(0)
		for _, s := range segs {
			if s > c.Segment {
				nextSeg = s
				break
			}
		}
		if nextSeg == 0 {
			return nil, nil
		}
		if st, err := os.Stat(h.segPath(c.Segment)); err == nil {
			if st.Size() > c.Offset {
				h.opt.Diag.Warn("logs.webhook: skipped a record cut short by a crash", "segment", c.Segment, "bytes", st.Size()-c.Offset)
			}
			h.undeleted += st.Size() // all of it is done with, until it is deleted
			if err := h.commit(cursor{Segment: nextSeg}); err != nil {
				return nil, err
			}
			if os.Remove(h.segPath(c.Segment)) == nil {
				h.backlog.Add(-st.Size())
				h.undeleted -= st.Size()
				h.sent.Store(h.undeleted + h.cur.Offset)
			}
		} else if err := h.commit(cursor{Segment: nextSeg}); err != nil {
			return nil, err
		}
	}
}

// read returns the whole records (lines ending in \n) of segment seg from off, at most
// maxRecords and about maxBytes (one record larger than that goes alone); nil when there is
// no whole record there yet.
func (h *Hook) read(seg, off, maxBytes int64, maxRecords int) (*batch, error) {
	f, err := os.Open(h.segPath(seg))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	avail := st.Size() - off
	if avail <= 0 {
		return nil, nil
	}
	buf := make([]byte, min(avail, maxBytes))
	for {
		n, err := f.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		buf = buf[:n]
		if bytes.IndexByte(buf, '\n') >= 0 || int64(len(buf)) >= avail {
			break
		}
		buf = make([]byte, min(avail, 2*int64(len(buf)))) // a record larger than maxBytes
	}
	b := &batch{seg: seg, start: off, end: off}
	for len(b.records) < maxRecords {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		line := buf[:i]
		buf = buf[i+1:]
		b.end += int64(i + 1)
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if !json.Valid(line) {
			h.opt.Diag.Warn("logs.webhook: skipped a damaged record", "segment", seg, "offset", b.end-int64(i+1))
			continue
		}
		b.records = append(b.records, line)
	}
	if b.end == off {
		return nil, nil
	}
	return b, nil
}

// deliver POSTs the batch until the receiver answers 2xx, waiting between tries (doubling from
// RetryInterval to MaxRetryInterval). It returns false when ctx ended first.
func (h *Hook) deliver(ctx context.Context, b *batch) bool {
	if len(b.records) == 0 {
		return true // only damaged lines: nothing to say, move on
	}
	body := make([]byte, 0, b.end-b.start+2)
	body = append(body, '[')
	for i, r := range b.records {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, r...)
	}
	body = append(body, ']')
	id := b.id(h.id)
	wait := h.opt.RetryInterval
	for failures := 0; ; failures++ {
		err := h.post(ctx, id, body)
		if err == nil {
			h.batches.Add(1)
			h.records.Add(int64(len(b.records)))
			h.failing.Store(false)
			if failures > 0 {
				h.opt.Diag.Info("logs.webhook: receiver accepts records again", "url", h.opt.URL, "failed_tries", failures)
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		h.failedPosts.Add(1)
		h.failing.Store(true)
		lvl := slog.LevelDebug
		if failures == 0 || failures%20 == 0 {
			lvl = slog.LevelWarn
		}
		h.opt.Diag.Log(ctx, lvl, "logs.webhook: batch not accepted; retrying", "url", h.opt.URL, "batch", id, "records", len(b.records), "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, h.opt.MaxRetryInterval)
	}
}

func (h *Hook) post(ctx context.Context, id string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, h.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.opt.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range h.opt.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(BatchIDHeader, id)
	if h.opt.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+h.opt.BearerToken)
	}
	resp, err := h.opt.Client.Do(req)
	if err != nil {
		return err
	}
	// Read a little of the answer so the connection can be reused, and no more.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}
