package spool

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wasmta/wasmta/host/message"
)

// Why a free-space reserve, and how big.
//
// Badger writes its memtable WAL (*.mem), value log (*.vlog), tables (*.sst) and discard stats
// (DISCARD) through shared memory maps over files it first extends with ftruncate. Extending
// only makes the file sparse; the blocks are allocated when a page of the map is first touched.
// When the filesystem has no block left for that page the kernel raises SIGBUS, which a Go
// program cannot recover from: the relay dies, and dies again on restart, because replaying a
// memtable touches pages too (on tmpfs even reading a hole allocates one). There is no error to
// handle, so the spool must never let Badger near that point: it keeps a reserve of free space
// (spool.min_free) and refuses new mail before the reserve is touched.
//
// What Badger may write on its own, with the options Open sets (Badger v4.9.6):
//
//   - memtables: each *.mem file is created sparse at 2 × MemTableSize and written to about
//     MemTableSize before it is frozen; up to NumMemtables frozen ones plus the active one are
//     flushed to level-0 tables (*.sst, written through a map of their final size) before their
//     WAL is deleted: (NumMemtables + 1) × MemTableSize.
//   - compaction writes its output tables before it deletes its inputs; the largest regular
//     one, level 0 into the base level, starts at NumLevelZeroTables level-0 tables:
//     NumLevelZeroTables × MemTableSize + BaseLevelSize.
//   - value log: each *.vlog file is created sparse at 2 × ValueLogFileSize and rotated after
//     ValueLogFileSize; value-log GC rewrites the live part of an old file (less than one file)
//     into the current one before deleting it: ValueLogFileSize.
//   - DISCARD is a 1 MiB map; MANIFEST and KEYREGISTRY are rewritten with plain writes: 2 MiB.
//
// With Badger's default 1 GiB value-log files that adds up to 1.7 GiB; Open uses 128 MiB files
// (larger only when the size limit for one message needs it), which also lets GC give back
// the space of delivered mail sooner, since it never touches the file being written. With the
// 16 MiB memtables Open sets (see below) that makes Badger's need 284 MiB, well under the
// 1 GiB default reserve.

const (
	// DefaultMinFree is the default reserve (spool.min_free).
	DefaultMinFree = 1 << 30

	// Badger options set explicitly because the reserve is computed from them: a change of
	// Badger's defaults must not silently shrink it. Memtables are smaller and fewer than
	// Badger's (64 MiB × 5): each one is a Go allocation of its full size once reused, and a
	// queue of small messages fills them with bodies, so they dominated the relay's memory
	// (docs/performance.md, "A million queued messages"). Level-0 tables are smaller with them.
	memTableSize       = 16 << 20
	numMemtables       = 3
	numLevelZeroTables = 5
	baseLevelSize      = 10 << 20
	// minValueLogFileSize is the value-log file size unless one message needs more.
	minValueLogFileSize = 128 << 20
	// metaFiles covers DISCARD (a 1 MiB map), MANIFEST and KEYREGISTRY.
	metaFiles = 2 << 20
	// blockCacheSize bounds the cache of table blocks (Badger's default: 256 MiB). A queue
	// reads each body about once, at delivery, so a large cache mostly holds what the start-up
	// scan read; it filled up with every restart of a big queue.
	blockCacheSize = 32 << 20

	// spaceTTL is how long a statfs result is trusted; writes accepted meanwhile are
	// subtracted from it, so a burst cannot overrun the reserve between two checks.
	spaceTTL = 100 * time.Millisecond
	// monitorInterval is how often free space is checked without traffic, so the diagnostics
	// and Stats notice space coming back on an idle relay.
	monitorInterval = time.Second
	// openPoll and openLogEvery pace the wait for space before Open.
	openPoll     = 250 * time.Millisecond
	openLogEvery = 10 * time.Second
	// recordOverhead bounds what Badger adds to one key and value in its logs (header, key,
	// crc, transaction markers), for Put's estimate.
	recordOverhead = 128
)

// ErrInsufficientStorage is what Room and Put return when accepting more would eat into the
// reserve: RFC 3463 4.3.1 "mail system full", with RFC 5321's 452 reply code.
var ErrInsufficientStorage = message.Errorf(452, "4.3.1", "insufficient system storage")

// valueLogFileSize is the value-log file size for bodies up to maxBody: Badger refuses a value
// larger than one file, so a file holds at least two of the largest messages.
func valueLogFileSize(maxBody int64) int64 {
	v := int64(minValueLogFileSize)
	if 2*maxBody > v {
		v = 2 * maxBody
	}
	return min(v, 2<<30-1) // Badger's upper bound
}

// badgerNeed is what Badger may write without asking, with value-log files of vlogSize (see
// the comment at the top of this file).
func badgerNeed(vlogSize int64) int64 {
	return (numMemtables+1)*memTableSize + numLevelZeroTables*memTableSize + baseLevelSize + vlogSize + metaFiles
}

// Stats are the spool's free-space counters.
type Stats struct {
	Free          int64  // bytes free for the spool at the last check, less what was written since
	MinFree       int64  // the reserve (spool.min_free)
	BelowReserve  bool   // new mail is refused for space (deliveries go on) until Free climbs a margin above MinFree
	SpaceRefusals uint64 // Room or Put calls refused for space since start
	Failed        bool   // a write failed (Failed): every write is refused until a restart
}

// space tracks free space on the spool's filesystem. A statfs result is reused for spaceTTL;
// in between, bytes in flight (reserved by Put, not yet committed) and bytes committed since
// the statfs are subtracted from it.
type space struct {
	path    string
	minFree int64
	log     *slog.Logger

	mu       sync.Mutex   // one statfs at a time
	statAt   atomic.Int64 // unix nanoseconds of the last statfs
	free     atomic.Int64 // its result
	pending  atomic.Int64 // reserved by Puts in progress
	since    atomic.Int64 // committed since the last statfs
	below    atomic.Bool
	refusals atomic.Uint64
}

func newSpace(path string, minFree int64, log *slog.Logger) *space {
	s := &space{path: path, minFree: minFree, log: log}
	s.refresh(true)
	return s
}

// refresh re-reads free space when the last reading is older than spaceTTL (or when forced)
// and reports crossings of the reserve, once each way.
func (s *space) refresh(force bool) {
	now := time.Now().UnixNano()
	if !force && now-s.statAt.Load() < int64(spaceTTL) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !force && now-s.statAt.Load() < int64(spaceTTL) {
		return // another caller just did it
	}
	// Writes committed before this point are in the statfs result; those committed while it
	// runs are counted twice until the next one, which errs on the safe side.
	done := s.since.Load()
	free, err := freeBytes(s.path)
	if err != nil {
		s.log.Error("spool: cannot read free space; keeping the last reading", "path", s.path, "err", err)
		s.statAt.Store(now)
		return
	}
	s.since.Add(-done)
	s.free.Store(free)
	s.statAt.Store(now)
	if est := s.estimate(); est < s.minFree {
		s.setBelow(est)
	} else if est >= s.minFree+s.hysteresis() && s.below.CompareAndSwap(true, false) {
		s.log.Info("spool free space back above spool.min_free: accepting mail again", "free", est, "min_free", s.minFree, "path", s.path)
	}
}

// setBelow enters the below-reserve state, logging once per crossing. A refusal enters it too:
// reception refusals keep free space just above the reserve, so it is seldom crossed as such.
func (s *space) setBelow(est int64) {
	if s.below.CompareAndSwap(false, true) {
		s.log.Warn("spool free space below spool.min_free: refusing new mail (452 4.3.1) until it returns; deliveries go on",
			"free", est, "min_free", s.minFree, "path", s.path)
	}
}

// hysteresis is how far above the reserve free space must climb to leave the below-reserve
// state, so a relay hovering at the reserve logs one crossing, not one per message.
func (s *space) hysteresis() int64 { return max(s.minFree/64, 1<<20) }

func (s *space) estimate() int64 { return s.free.Load() - s.since.Load() - s.pending.Load() }

// room checks that n more bytes leave the reserve intact, without reserving them.
//
// Once it has refused, it keeps refusing (even n = 0, a MAIL without SIZE=) until free space is
// back a margin above the reserve: a relay sitting at the reserve then answers 452 at MAIL, as
// Postfix does below queue_minfree, instead of taking data it would refuse after DATA.
func (s *space) room(n int64) error {
	s.refresh(false)
	if est := s.estimate(); s.below.Load() || est-n < s.minFree {
		s.refusals.Add(1)
		s.setBelow(est)
		return ErrInsufficientStorage.Wrap(fmt.Errorf("%d bytes free, %d more would leave less than spool.min_free %d", est, n, s.minFree))
	}
	return nil
}

// reserve is room that holds n bytes for a write until done is called with whether it was
// committed.
func (s *space) reserve(n int64) error {
	s.refresh(false)
	p := s.pending.Add(n)
	if est := s.free.Load() - s.since.Load() - p; est < s.minFree {
		s.pending.Add(-n)
		s.refusals.Add(1)
		s.setBelow(est)
		return ErrInsufficientStorage.Wrap(fmt.Errorf("%d bytes free after this write of %d, less than spool.min_free %d", est, n, s.minFree))
	}
	return nil
}

// done releases a reservation; the bytes now count as written (a failed commit may have
// written part of them, so they count either way until the next statfs).
func (s *space) done(n int64) {
	s.since.Add(n)
	s.pending.Add(-n)
}

func (s *space) stats() Stats {
	return Stats{Free: s.estimate(), MinFree: s.minFree, BelowReserve: s.below.Load(), SpaceRefusals: s.refusals.Load()}
}

// freeBytes is the space an unprivileged process may still use on path's filesystem (statfs
// f_bavail: root's reserved blocks do not count, the relay should not live on them). A path
// that does not exist yet is measured at its nearest existing parent.
func freeBytes(path string) (int64, error) {
	for {
		var st syscall.Statfs_t
		err := syscall.Statfs(path, &st)
		if err == nil {
			return int64(st.Bavail) * int64(st.Bsize), nil
		}
		parent := filepath.Dir(path)
		if !errors.Is(err, syscall.ENOENT) || parent == path {
			return 0, err
		}
		path = parent
	}
}

// replayBytes is what opening the spool at dir writes before anything else: each memtable WAL
// left by a crash (*.mem) is replayed and flushed into a table as large as its contents. The
// files are sparse, so their allocated blocks measure the contents, not their length.
func replayBytes(dir string) int64 {
	var n int64
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0 // nothing there yet
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".mem") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		n += allocated(fi)
	}
	return n
}

func allocated(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return min(st.Blocks*512, fi.Size())
	}
	return fi.Size()
}

// waitForRoom returns once dir's filesystem has room for what Open writes on its own: the
// memtable replay plus what Badger may write later without asking (capped by the reserve,
// the operator's word on what is enough). Until then it logs why it waits, with the numbers,
// every openLogEvery. It returns ctx's error if told to stop first.
func waitForRoom(ctx context.Context, dir string, minFree, vlogSize int64, log *slog.Logger) error {
	var lastLog time.Time
	waited := false
	for {
		replay := replayBytes(dir)
		need := replay + min(minFree, badgerNeed(vlogSize))
		free, err := freeBytes(dir)
		if err != nil {
			return fmt.Errorf("free space of %s: %w", dir, err)
		}
		if free >= need {
			if waited {
				log.Info("spool: free space available, opening", "path", dir, "free", free, "need", need)
			}
			return nil
		}
		if time.Since(lastLog) >= openLogEvery {
			log.Warn("spool: waiting for free space before opening (opening now could crash the process)",
				"path", dir, "free", free, "need", need, "replay", replay, "min_free", minFree)
			lastLog = time.Now()
		}
		waited = true
		select {
		case <-ctx.Done():
			return fmt.Errorf("spool %s: stopped while waiting for free space: %w", dir, ctx.Err())
		case <-time.After(openPoll):
		}
	}
}
