package queue

// maxSpare bounds the goroutines kept waiting for the next dispatch or connection worker.
const maxSpare = 64

// spares keeps goroutines that finished their work waiting for more. A dispatch runs once per
// message, and a fresh goroutine starts on a small stack that grows (by copying) to what
// resolving and routing need: about 3 % of the relay's CPU under load, gone when a goroutine
// whose stack has already grown takes the next one. At most maxSpare wait; they end with the
// manager (Stop waits for them, as for any goroutine spawn started).
type spares struct {
	work chan func() // unbuffered: a send succeeds only into a waiting goroutine
	n    chan struct{}
}

func newSpares() spares {
	return spares{work: make(chan func()), n: make(chan struct{}, maxSpare)}
}

// spawn runs f in a counted goroutine unless the manager is stopping: a spare one when one
// waits, else a new one.
func (m *Manager) spawn(f func()) bool {
	m.stopMu.Lock()
	defer m.stopMu.Unlock()
	if m.stopped {
		return false
	}
	select {
	case m.spare.work <- f:
		return true
	default:
	}
	m.workers.Add(1)
	go m.runSpare(f)
	return true
}

// runSpare runs f, then waits for more work while there are fewer than maxSpare waiting; it
// ends when the manager stops.
func (m *Manager) runSpare(f func()) {
	defer m.workers.Done()
	for {
		f()
		select {
		case m.spare.n <- struct{}{}:
		default:
			return // enough wait already
		}
		select {
		case f = <-m.spare.work:
			<-m.spare.n
		case <-m.ctx.Done():
			<-m.spare.n
			return
		}
	}
}
