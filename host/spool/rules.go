package spool

import (
	"bytes"
	"errors"

	badger "github.com/dgraph-io/badger/v4"
)

// Admin rules (suspensions, bounce rules of the admin API) are small JSON records kept under
// their own prefix, "a/<id>", next to the messages they act on: a suspension must survive a
// restart exactly as long as the mail it holds does. Scan never sees them (it reads "m/" only).
var rulePrefix = []byte("a/")

func ruleKey(id string) []byte { return append(append([]byte{}, rulePrefix...), id...) }

// PutRule stores an admin rule and returns once it is synced to disk, like Put: the API
// answers with the rule's id only when a crash can no longer lose it. It is not refused below
// the free-space reserve (a rule is a few hundred bytes, and suspending or bouncing mail is
// what an operator does when the disk fills).
func (s *Spool) PutRule(id string, v []byte) error {
	if id == "" || len(v) == 0 {
		return errors.New("spool: empty rule")
	}
	return s.write(&request{ops: []op{{ruleKey(id), v}}, done: make(chan error, 1)})
}

// DeleteRule removes an admin rule, synced before it returns.
func (s *Spool) DeleteRule(id string) error {
	return s.write(&request{ops: []op{{key: ruleKey(id)}}, done: make(chan error, 1)})
}

func (s *Spool) write(r *request) error {
	if err := s.send(r); err != nil {
		return err
	}
	return <-r.done
}

// Rules returns every stored admin rule by id.
func (s *Spool) Rules() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = rulePrefix
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out[string(bytes.TrimPrefix(it.Item().Key(), rulePrefix))] = v
		}
		return nil
	})
	return out, err
}

// Health is nil while the spool accepts writes; after a failed commit or sync (what is on disk is then
// uncertain and every write is refused until a restart) or Close it says why not.
func (s *Spool) Health() error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	return s.Failed()
}
