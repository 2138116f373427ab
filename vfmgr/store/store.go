package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/vflag/vflag/vfmgr"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound: no allocation or intent under that key.
	ErrNotFound = errors.New("not found")
	// ErrLocked: another process (another vflagd) holds the state file.
	ErrLocked = errors.New("no lock")
	// ErrCorrupt: a record does not decode.
	ErrCorrupt = errors.New("corrupt record")
	// ErrSchemaVersion: a record was written by a vflagd with another schema.
	ErrSchemaVersion = errors.New("unknown schema version")
	// ErrConflict: a write would leave the table inconsistent (a VF held
	// twice, a move from a VF the VM does not hold, overlapping intents).
	ErrConflict = errors.New("conflict")
)

// DefaultLockTimeout is how long Open waits for the file lock by default.
const DefaultLockTimeout = time.Second

// Bucket names.
const (
	allocBucket  = "allocations"
	intentBucket = "intents"
)

// Options tune Open. The zero value is what vflagd uses.
type Options struct {
	// LockTimeout bounds the wait for a file lock that another process
	// holds; 0 means DefaultLockTimeout.
	LockTimeout time.Duration
	// Now stamps Allocation.Since on committed moves and Intent.Created;
	// nil means time.Now.
	Now func() time.Time
}

// Store is the allocation table. Its methods are safe for concurrent use:
// bbolt serialises writers and gives readers a consistent snapshot.
type Store struct {
	// db is the open bbolt file.
	db *bolt.DB
	// path is the file's name, for errors.
	path string
	// now is Options.Now or time.Now.
	now func() time.Time
}

// Move re-homes one allocation from one VF to another.
type Move struct {
	// Key is the allocation's key (Allocation.Key()).
	Key string
	// From is the VF the allocation holds before the move.
	From vfmgr.VFRef
	// To is the VF it holds after the move.
	To vfmgr.VFRef
}

// Intent is a batch of moves written ahead by BeginMoves and not yet
// committed or aborted.
type Intent struct {
	// ID names the batch (the daemon's failover ID); IDs that sort by time
	// make PendingMoves return intents oldest first.
	ID string
	// Created is when BeginMoves wrote it.
	Created time.Time
	// Moves are the planned moves, in the planner's order.
	Moves []Move
}

// Open opens (creating if needed) the state file at path and takes its lock.
// If another process holds the lock for longer than opts.LockTimeout, Open
// fails with an error matching ErrLocked.
func Open(path string, opts Options) (*Store, error) {
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("state file %s is locked: another vflagd running? (%w after %s)", path, ErrLocked, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{allocBucket, intentBucket} {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("state file %s: %w", path, err), db.Close())
	}
	return &Store{db: db, path: path, now: now}, nil
}

// Close releases the file and its lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state file %s: %w", s.path, err)
	}
	return nil
}

// Put writes a (the allocation under a.Key()), replacing any earlier one
// for the same key. It fails with ErrConflict if another allocation holds
// the same VF, or a pending intent moves another allocation onto it. A VM's
// VF changes through BeginMoves/CommitMoves at failover and through Put
// otherwise.
func (s *Store) Put(a vfmgr.Allocation) error {
	if err := validate(a); err != nil {
		return err
	}
	key := a.Key()
	val, err := encodeAlloc(a)
	if err != nil {
		return fmt.Errorf("allocation %q: %w", key, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(allocBucket))
		t, err := readTable(b)
		if err != nil {
			return err
		}
		if other, ok := t.held[a.VF]; ok && other != key {
			return fmt.Errorf("%s is held by %q: %w", a.VF, other, ErrConflict)
		}
		err = tx.Bucket([]byte(intentBucket)).ForEach(func(k, v []byte) error {
			in, err := decodeIntent(string(k), v)
			if err != nil {
				return err
			}
			for _, m := range in.Moves {
				if m.To == a.VF && m.Key != key {
					return fmt.Errorf("%s is the target of %q in pending intent %q: %w", a.VF, m.Key, in.ID, ErrConflict)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		return b.Put([]byte(key), val)
	})
	if err != nil {
		return fmt.Errorf("put allocation %q on %s: %w", key, a.VF, err)
	}
	return nil
}

// Delete removes the allocation under key. Deleting a missing key is not an
// error (release is idempotent). A pending move of key is then skipped by
// CommitMoves.
func (s *Store) Delete(key string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(allocBucket)).Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("delete allocation %q: %w", key, err)
	}
	return nil
}

// Get returns the allocation under key, or an error matching ErrNotFound.
func (s *Store) Get(key string) (vfmgr.Allocation, error) {
	var a vfmgr.Allocation
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte(allocBucket)).Get([]byte(key))
		if v == nil {
			return fmt.Errorf("allocation %q: %w", key, ErrNotFound)
		}
		var err error
		a, err = decodeAlloc(key, v)
		return err
	})
	return a, err
}

// List returns every allocation, sorted by key.
func (s *Store) List() ([]vfmgr.Allocation, error) {
	var out []vfmgr.Allocation
	err := s.db.View(func(tx *bolt.Tx) error {
		// bbolt iterates in byte order of the keys: sorted by key.
		return tx.Bucket([]byte(allocBucket)).ForEach(func(k, v []byte) error {
			a, err := decodeAlloc(string(k), v)
			if err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list allocations: %w", err)
	}
	return out, nil
}

// BeginMoves writes the intent to apply moves, as batch id. Call it BEFORE
// changing any VF in the kernel: after a crash, PendingMoves shows what may
// have been half done. The allocations themselves do not change until
// CommitMoves.
//
// It checks the plan against the table, in the same transaction, and fails
// with ErrConflict (naming the key) when a move's allocation does not hold
// its From VF, a key appears twice, a key or a target VF is already in
// another pending intent, or the moves would leave one VF held by two
// allocations; with ErrNotFound when a key has no allocation. Nothing is
// written then.
func (s *Store) BeginMoves(id string, moves []Move) error {
	if id == "" {
		return errors.New("begin moves: empty intent ID")
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		ib := tx.Bucket([]byte(intentBucket))
		if ib.Get([]byte(id)) != nil {
			return fmt.Errorf("intent already pending: %w", ErrConflict)
		}
		moving := map[string]bool{}
		targets := map[vfmgr.VFRef]string{}
		for _, m := range moves {
			targets[m.To] = m.Key
			if m.To.PF == "" || m.To.Index < 0 {
				return fmt.Errorf("allocation %q: invalid target VF %q index %d", m.Key, m.To.PF, m.To.Index)
			}
			if moving[m.Key] {
				return fmt.Errorf("allocation %q moves twice: %w", m.Key, ErrConflict)
			}
			moving[m.Key] = true
		}
		err := ib.ForEach(func(k, v []byte) error {
			other, err := decodeIntent(string(k), v)
			if err != nil {
				return err
			}
			for _, m := range other.Moves {
				if moving[m.Key] {
					return fmt.Errorf("allocation %q already has a pending move in intent %q: %w", m.Key, other.ID, ErrConflict)
				}
				if key, ok := targets[m.To]; ok {
					return fmt.Errorf("allocation %q cannot move to %s, the target of %q in pending intent %q: %w", key, m.To, m.Key, other.ID, ErrConflict)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := applyMoves(tx.Bucket([]byte(allocBucket)), moves, false, time.Time{}); err != nil {
			return err
		}
		val, err := encodeIntent(Intent{ID: id, Created: s.now(), Moves: moves})
		if err != nil {
			return err
		}
		return ib.Put([]byte(id), val)
	})
	if err != nil {
		return fmt.Errorf("begin moves %q: %w", id, err)
	}
	return nil
}

// CommitMoves applies intent id to the allocations and deletes the intent,
// in one transaction: after a crash the file shows either the old
// allocations and the intent, or the new allocations and no intent. Each
// moved allocation gets Since = now. A move whose allocation was deleted
// since BeginMoves (the VM went away) is skipped; one whose allocation
// already holds its To VF is left as it is. If any
// allocation holds neither VF of its move, nothing changes and the error
// matches ErrConflict.
func (s *Store) CommitMoves(id string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		ib := tx.Bucket([]byte(intentBucket))
		v := ib.Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		in, err := decodeIntent(id, v)
		if err != nil {
			return err
		}
		if err := applyMoves(tx.Bucket([]byte(allocBucket)), in.Moves, true, s.now()); err != nil {
			return err
		}
		return ib.Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("commit moves %q: %w", id, err)
	}
	return nil
}

// AbortMoves deletes intent id without touching the allocations: the daemon
// calls it after undoing (or never starting) the kernel side of the moves.
func (s *Store) AbortMoves(id string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		ib := tx.Bucket([]byte(intentBucket))
		if ib.Get([]byte(id)) == nil {
			return ErrNotFound
		}
		return ib.Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("abort moves %q: %w", id, err)
	}
	return nil
}

// PendingMoves returns the intents written by BeginMoves and neither
// committed nor aborted, sorted by ID. The daemon reconciles each with the
// kernel at start-up.
func (s *Store) PendingMoves() ([]Intent, error) {
	var out []Intent
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(intentBucket)).ForEach(func(k, v []byte) error {
			in, err := decodeIntent(string(k), v)
			if err != nil {
				return err
			}
			out = append(out, in)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list pending moves: %w", err)
	}
	return out, nil
}

// validate checks what the key and the VF reference need.
func validate(a vfmgr.Allocation) error {
	switch {
	case a.VM == "" || a.Iface == "":
		return fmt.Errorf("allocation %q: VM and interface must be set", a.Key())
	case strings.Contains(a.VM, "/"):
		// libvirt rejects '/' in domain names too; it would make keys ambiguous.
		return fmt.Errorf("allocation %q: VM name contains '/'", a.Key())
	case a.VF.PF == "" || a.VF.Index < 0:
		return fmt.Errorf("allocation %q: invalid VF %q index %d", a.Key(), a.VF.PF, a.VF.Index)
	}
	return nil
}

// table is the allocations bucket decoded: by key, and by held VF.
type table struct {
	// byKey holds every allocation; held maps each held VF to its key.
	byKey map[string]vfmgr.Allocation
	held  map[vfmgr.VFRef]string
}

// readTable decodes every allocation in b. A VF held twice is an error.
func readTable(b *bolt.Bucket) (table, error) {
	t := table{byKey: map[string]vfmgr.Allocation{}, held: map[vfmgr.VFRef]string{}}
	err := b.ForEach(func(k, v []byte) error {
		a, err := decodeAlloc(string(k), v)
		if err != nil {
			return err
		}
		if other, ok := t.held[a.VF]; ok {
			return fmt.Errorf("%s is held by both %q and %q: %w", a.VF, other, k, ErrConflict)
		}
		t.byKey[a.Key()] = a
		t.held[a.VF] = a.Key()
		return nil
	})
	return t, err
}

// applyMoves checks moves against the allocations in b and, when write is
// set, writes the moved allocations with Since = now. With write unset
// (BeginMoves) every key must exist and hold its From VF; with write set
// (CommitMoves) a missing key is skipped and a key already on its To VF is
// left alone.
func applyMoves(b *bolt.Bucket, moves []Move, write bool, now time.Time) error {
	t, err := readTable(b)
	if err != nil {
		return err
	}
	held := t.held
	var todo []vfmgr.Allocation
	for _, m := range moves {
		a, ok := t.byKey[m.Key]
		if !ok {
			if write {
				continue
			}
			return fmt.Errorf("allocation %q: %w", m.Key, ErrNotFound)
		}
		switch {
		case write && a.VF == m.To:
			continue
		case a.VF != m.From:
			return fmt.Errorf("allocation %q holds %s, not %s (move to %s): %w", m.Key, a.VF, m.From, m.To, ErrConflict)
		}
		// Free every From first, so that swaps and chains pass the check below.
		delete(held, m.From)
		a.VF = m.To
		a.Since = now
		todo = append(todo, a)
	}
	for _, a := range todo {
		if other, ok := held[a.VF]; ok {
			return fmt.Errorf("allocation %q cannot move to %s, held by %q: %w", a.Key(), a.VF, other, ErrConflict)
		}
		held[a.VF] = a.Key()
	}
	if !write {
		return nil
	}
	for _, a := range todo {
		val, err := encodeAlloc(a)
		if err != nil {
			return fmt.Errorf("allocation %q: %w", a.Key(), err)
		}
		if err := b.Put([]byte(a.Key()), val); err != nil {
			return fmt.Errorf("allocation %q: %w", a.Key(), err)
		}
	}
	return nil
}
