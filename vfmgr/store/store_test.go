package store_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/store"
)

// crashEnv makes the test binary act as a vflagd that crashes mid-failover
// (see TestMain and TestCrashAfterBegin).
const crashEnv = "VFLAG_STORE_CRASH_FILE"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashEnv); path != "" {
		os.Exit(crashAfterBegin(path))
	}
	os.Exit(m.Run())
}

// crashAfterBegin writes an intent and exits without commit or Close, as a
// vflagd killed between BeginMoves and CommitMoves would.
func crashAfterBegin(path string) int {
	s, err := store.Open(path, store.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := s.BeginMoves("f1", []store.Move{move("vm1/eth0", "pf0", 0, "pf1", 0)}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 3 // no Close: the process dies holding the file
}

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func alloc(vm, iface, pf string, idx int) vfmgr.Allocation {
	return vfmgr.Allocation{
		VM: vm, Iface: iface,
		MAC:  net.HardwareAddr{0x52, 0x54, 0, 0, byte(idx >> 8), byte(idx)},
		Bond: "bond0", VF: vfmgr.VFRef{PF: pf, Index: idx}, Since: t0,
	}
}

func move(key, fromPF string, from int, toPF string, to int) store.Move {
	return store.Move{Key: key, From: vfmgr.VFRef{PF: fromPF, Index: from}, To: vfmgr.VFRef{PF: toPF, Index: to}}
}

func open(t testing.TB, path string) *store.Store {
	t.Helper()
	s, err := store.Open(path, store.Options{Now: func() time.Time { return t0.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// closeStore closes s; closing twice (a test that reopens) is fine.
func closeStore(t testing.TB, s *store.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Error(err)
	}
}

func newStore(t testing.TB, allocs ...vfmgr.Allocation) (*store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "state.db")
	s := open(t, path)
	t.Cleanup(func() { closeStore(t, s) })
	for _, a := range allocs {
		if err := s.Put(a); err != nil {
			t.Fatal(err)
		}
	}
	return s, path
}

// table renders the allocations as "key@VF" lines, for comparisons.
func table(t *testing.T, s *store.Store) string {
	t.Helper()
	all, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, a := range all {
		fmt.Fprintf(&b, "%s@%s since %s\n", a.Key(), a.VF, a.Since.Format(time.TimeOnly))
	}
	return b.String()
}

// pending renders the intents as text.
func pending(t *testing.T, s *store.Store) string {
	t.Helper()
	ins, err := s.PendingMoves()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, in := range ins {
		fmt.Fprintf(&b, "%s:", in.ID)
		for _, m := range in.Moves {
			fmt.Fprintf(&b, " %s %s->%s", m.Key, m.From, m.To)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	want := vfmgr.Allocation{
		VM: "web-1", Iface: "52:54:00:12:34:56",
		MAC:  net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56},
		VLAN: 100, QoS: 3, Trust: true, Bond: "bond0",
		VF:    vfmgr.VFRef{PF: "ens1f1", Index: 6},
		Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")},
		Since: time.Date(2026, 11, 21, 12, 0, 0, 123456789, time.FixedZone("CET", 3600)),
		Home:  "ens1f0", Mode: vfmgr.ModeHotswap, DomainUUID: "0b5c4a6e-2f0f-4f55-9a43-4f1e6c0d2a11",
	}
	if err := s.Put(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(want.Key())
	if err != nil {
		t.Fatal(err)
	}
	if !got.Since.Equal(want.Since) {
		t.Errorf("Since %v, want %v", got.Since, want.Since)
	}
	got.Since, want.Since = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	// Put replaces.
	want.VLAN = 200
	if err := s.Put(want); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(want.Key()); got.VLAN != 200 {
		t.Errorf("after a second Put VLAN is %d, want 200", got.VLAN)
	}

	if err := s.Delete(want.Key()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(want.Key()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(want.Key()); err != nil {
		t.Errorf("second Delete: %v, want nil (release is idempotent)", err)
	}
}

func TestListSortedAndReopen(t *testing.T) {
	t.Parallel()
	s, path := newStore(t,
		alloc("vm3", "eth0", "pf0", 2),
		alloc("vm1", "eth1", "pf0", 1),
		alloc("vm10", "eth0", "pf1", 0),
		alloc("vm1", "eth0", "pf0", 0),
	)
	want := "vm1/eth0@pf0 vf 0 since 12:00:00\n" +
		"vm1/eth1@pf0 vf 1 since 12:00:00\n" +
		"vm10/eth0@pf1 vf 0 since 12:00:00\n" +
		"vm3/eth0@pf0 vf 2 since 12:00:00\n"
	if got := table(t, s); got != want {
		t.Errorf("List:\n%s\nwant\n%s", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, path)
	defer closeStore(t, s2)
	if got := table(t, s2); got != want {
		t.Errorf("after reopen:\n%s\nwant\n%s", got, want)
	}
}

func TestPutRejects(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, alloc("vm1", "eth0", "pf0", 0))
	for _, tc := range []struct {
		name string
		a    vfmgr.Allocation
		want string
		is   error
	}{
		{"empty VM", alloc("", "eth0", "pf0", 1), `allocation "/eth0": VM and interface must be set`, nil},
		{"slash in VM", alloc("a/b", "eth0", "pf0", 1), `allocation "a/b/eth0": VM name contains '/'`, nil},
		{"no PF", alloc("vm2", "eth0", "", 1), `allocation "vm2/eth0": invalid VF "" index 1`, nil},
		{"VF held", alloc("vm2", "eth0", "pf0", 0), `put allocation "vm2/eth0" on pf0 vf 0: pf0 vf 0 is held by "vm1/eth0": conflict`, store.ErrConflict},
	} {
		err := s.Put(tc.a)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: Put = %v, want %q", tc.name, err, tc.want)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: %v does not match %v", tc.name, err, tc.is)
		}
	}
	// The holder itself may be rewritten on its VF.
	if err := s.Put(alloc("vm1", "eth0", "pf0", 0)); err != nil {
		t.Errorf("rewrite of the holder: %v", err)
	}
}

func TestMovesBeginCommit(t *testing.T) {
	t.Parallel()
	s, path := newStore(t,
		alloc("vm1", "eth0", "pf0", 0),
		alloc("vm2", "eth0", "pf0", 1),
		alloc("vm3", "eth0", "pf1", 5),
	)
	before := table(t, s)
	moves := []store.Move{move("vm1/eth0", "pf0", 0, "pf1", 0), move("vm2/eth0", "pf0", 1, "pf1", 1)}
	if err := s.BeginMoves("f1", moves); err != nil {
		t.Fatal(err)
	}
	if got := table(t, s); got != before {
		t.Errorf("BeginMoves changed the allocations:\n%s", got)
	}
	if got, want := pending(t, s), "f1: vm1/eth0 pf0 vf 0->pf1 vf 0 vm2/eth0 pf0 vf 1->pf1 vf 1\n"; got != want {
		t.Errorf("pending %q, want %q", got, want)
	}

	// A crash now: the file is closed without a commit.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer closeStore(t, s)
	ins, err := s.PendingMoves()
	if err != nil || len(ins) != 1 || !ins[0].Created.Equal(t0.Add(time.Hour)) || !reflect.DeepEqual(ins[0].Moves, moves) {
		t.Fatalf("after reopen PendingMoves = %+v, %v; want f1 with the moves", ins, err)
	}
	if got := table(t, s); got != before {
		t.Errorf("after reopen the allocations changed:\n%s", got)
	}

	if err := s.CommitMoves("f1"); err != nil {
		t.Fatal(err)
	}
	want := "vm1/eth0@pf1 vf 0 since 13:00:00\n" +
		"vm2/eth0@pf1 vf 1 since 13:00:00\n" +
		"vm3/eth0@pf1 vf 5 since 12:00:00\n"
	if got := table(t, s); got != want {
		t.Errorf("after commit:\n%s\nwant\n%s", got, want)
	}
	if got := pending(t, s); got != "" {
		t.Errorf("intent left after commit: %q", got)
	}
	if err := s.CommitMoves("f1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second commit: %v, want ErrNotFound", err)
	}
}

// TestCommitAtomic: a commit that cannot apply every move applies none and
// keeps the intent.
func TestCommitAtomic(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t,
		alloc("vm1", "eth0", "pf0", 0),
		alloc("vm2", "eth0", "pf0", 1),
	)
	if err := s.BeginMoves("f1", []store.Move{move("vm1/eth0", "pf0", 0, "pf1", 0), move("vm2/eth0", "pf0", 1, "pf1", 1)}); err != nil {
		t.Fatal(err)
	}
	// Behind the plan's back, vm2 is put on another VF.
	if err := s.Put(alloc("vm2", "eth0", "pf0", 4)); err != nil {
		t.Fatal(err)
	}
	before, beforeIntent := table(t, s), pending(t, s)
	err := s.CommitMoves("f1")
	want := `commit moves "f1": allocation "vm2/eth0" holds pf0 vf 4, not pf0 vf 1 (move to pf1 vf 1): conflict`
	if err == nil || err.Error() != want || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CommitMoves = %v, want %q", err, want)
	}
	if got := table(t, s); got != before {
		t.Errorf("failed commit changed allocations:\n%s\nwant\n%s", got, before)
	}
	if got := pending(t, s); got != beforeIntent {
		t.Errorf("failed commit changed intents: %q, want %q", got, beforeIntent)
	}

	// Abort drops the intent and leaves the allocations.
	if err := s.AbortMoves("f1"); err != nil {
		t.Fatal(err)
	}
	if got := pending(t, s); got != "" {
		t.Errorf("intent left after abort: %q", got)
	}
	if got := table(t, s); got != before {
		t.Errorf("abort changed allocations:\n%s", got)
	}
	if err := s.AbortMoves("f1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second abort: %v, want ErrNotFound", err)
	}
}

func TestCommitSkipsReleasedAndRepeats(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t,
		alloc("vm1", "eth0", "pf0", 0),
		alloc("vm2", "eth0", "pf0", 1),
		alloc("vm3", "eth0", "pf0", 2),
	)
	err := s.BeginMoves("f1", []store.Move{
		move("vm1/eth0", "pf0", 0, "pf1", 0),
		move("vm2/eth0", "pf0", 1, "pf1", 1),
		move("vm3/eth0", "pf0", 2, "pf1", 2),
	})
	if err != nil {
		t.Fatal(err)
	}
	// vm1 is released during the failover; vm3 was already moved by hand.
	if err := s.Delete("vm1/eth0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(alloc("vm3", "eth0", "pf1", 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitMoves("f1"); err != nil {
		t.Fatal(err)
	}
	want := "vm2/eth0@pf1 vf 1 since 13:00:00\nvm3/eth0@pf1 vf 2 since 12:00:00\n"
	if got := table(t, s); got != want {
		t.Errorf("after commit:\n%s\nwant\n%s", got, want)
	}
}

func TestBeginMovesRejects(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t,
		alloc("vm1", "eth0", "pf0", 0),
		alloc("vm2", "eth0", "pf0", 1),
		alloc("vm3", "eth0", "pf1", 0),
	)
	if err := s.BeginMoves("f0", []store.Move{move("vm2/eth0", "pf0", 1, "pf1", 1)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		id    string
		moves []store.Move
		want  string
		is    error
	}{
		{
			"unknown key", "f1",
			[]store.Move{move("vm9/eth0", "pf0", 0, "pf1", 0)},
			`begin moves "f1": allocation "vm9/eth0": not found`, store.ErrNotFound,
		},
		{
			"wrong From", "f1",
			[]store.Move{move("vm1/eth0", "pf0", 3, "pf1", 3)},
			`begin moves "f1": allocation "vm1/eth0" holds pf0 vf 0, not pf0 vf 3 (move to pf1 vf 3): conflict`, store.ErrConflict,
		},
		{
			"key twice", "f1",
			[]store.Move{move("vm1/eth0", "pf0", 0, "pf1", 3), move("vm1/eth0", "pf0", 0, "pf1", 4)},
			`begin moves "f1": allocation "vm1/eth0" moves twice: conflict`, store.ErrConflict,
		},
		{
			"target held", "f1",
			[]store.Move{move("vm1/eth0", "pf0", 0, "pf1", 0)},
			`begin moves "f1": allocation "vm1/eth0" cannot move to pf1 vf 0, held by "vm3/eth0": conflict`, store.ErrConflict,
		},
		{
			"overlaps a pending intent", "f1",
			[]store.Move{move("vm2/eth0", "pf0", 1, "pf1", 2)},
			`begin moves "f1": allocation "vm2/eth0" already has a pending move in intent "f0": conflict`, store.ErrConflict,
		},
		{
			"ID pending", "f0",
			[]store.Move{move("vm1/eth0", "pf0", 0, "pf1", 3)},
			`begin moves "f0": intent already pending: conflict`, store.ErrConflict,
		},
		{
			"target of a pending intent", "f1",
			[]store.Move{move("vm1/eth0", "pf0", 0, "pf1", 1)},
			`begin moves "f1": allocation "vm1/eth0" cannot move to pf1 vf 1, the target of "vm2/eth0" in pending intent "f0": conflict`, store.ErrConflict,
		},
		{"empty ID", "", nil, "begin moves: empty intent ID", nil},
		{
			"no target PF", "f1",
			[]store.Move{move("vm1/eth0", "pf0", 0, "", 3)},
			`begin moves "f1": allocation "vm1/eth0": invalid target VF "" index 3`, nil,
		},
	} {
		err := s.BeginMoves(tc.id, tc.moves)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: BeginMoves = %v\nwant %q", tc.name, err, tc.want)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: %v does not match %v", tc.name, err, tc.is)
		}
	}
	if got, want := pending(t, s), "f0: vm2/eth0 pf0 vf 1->pf1 vf 1\n"; got != want {
		t.Errorf("rejected intents were written: %q, want %q", got, want)
	}
	// The target of a pending move is reserved.
	err := s.Put(alloc("vm4", "eth0", "pf1", 1))
	if want := `put allocation "vm4/eth0" on pf1 vf 1: pf1 vf 1 is the target of "vm2/eth0" in pending intent "f0": conflict`; err == nil || err.Error() != want {
		t.Errorf("Put on a reserved VF = %v\nwant %q", err, want)
	}

	// A swap of two VFs is consistent.
	if err := s.BeginMoves("f2", []store.Move{move("vm1/eth0", "pf0", 0, "pf1", 0), move("vm3/eth0", "pf1", 0, "pf0", 0)}); err != nil {
		t.Fatalf("swap: %v", err)
	}
	if err := s.CommitMoves("f2"); err != nil {
		t.Fatal(err)
	}
	want := "vm1/eth0@pf1 vf 0 since 13:00:00\nvm2/eth0@pf0 vf 1 since 12:00:00\nvm3/eth0@pf0 vf 0 since 13:00:00\n"
	if got := table(t, s); got != want {
		t.Errorf("after swap:\n%s\nwant\n%s", got, want)
	}
}

// TestCrashAfterBegin kills a real process between BeginMoves and
// CommitMoves: the next Open gets the lock and sees the intent.
func TestCrashAfterBegin(t *testing.T) {
	t.Parallel()
	s, path := newStore(t, alloc("vm1", "eth0", "pf0", 0))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("crashing process: %v: %s", err, out)
	}
	s = open(t, path)
	defer closeStore(t, s)
	if got, want := pending(t, s), "f1: vm1/eth0 pf0 vf 0->pf1 vf 0\n"; got != want {
		t.Errorf("after the crash pending = %q, want %q", got, want)
	}
	if got, want := table(t, s), "vm1/eth0@pf0 vf 0 since 12:00:00\n"; got != want {
		t.Errorf("after the crash:\n%s\nwant\n%s", got, want)
	}
}

func TestLocked(t *testing.T) {
	t.Parallel()
	_, path := newStore(t)
	start := time.Now()
	s2, err := store.Open(path, store.Options{LockTimeout: 50 * time.Millisecond})
	if err == nil {
		closeStore(t, s2)
		t.Fatal("second Open of a locked file succeeded")
	}
	want := fmt.Sprintf("state file %s is locked: another vflagd running? (no lock after 50ms)", path)
	if err.Error() != want || !errors.Is(err, store.ErrLocked) {
		t.Errorf("second Open: %v\nwant %q", err, want)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("second Open waited %s", time.Since(start))
	}
}

// TestCorrupt: a record that does not decode, or is of another schema, is an
// error naming its key, from every reader.
func TestCorrupt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, bucket, key, value string
		want                     string
		is                       error
	}{
		{"garbage", "allocations", "vm2/eth0", `{"v":1,"vm":`, `allocation "vm2/eth0": corrupt record: unexpected EOF`, store.ErrCorrupt},
		{"trailing data", "allocations", "vm2/eth0", `{"v":1,"vm":"vm2","iface":"eth0"} {}`, `allocation "vm2/eth0": corrupt record: data after the record`, store.ErrCorrupt},
		{"future version, other fields", "allocations", "vm2/eth0", `{"v":2,"vm":["vm2"],"new":1}`, `allocation "vm2/eth0": unknown schema version 2 (this vflagd reads 1)`, store.ErrSchemaVersion},
		{"no version", "allocations", "vm2/eth0", `{"vm":"vm2","iface":"eth0"}`, `allocation "vm2/eth0": corrupt record: no schema version`, store.ErrCorrupt},
		{"future version", "allocations", "vm2/eth0", `{"v":2,"vm":"vm2"}`, `allocation "vm2/eth0": unknown schema version 2 (this vflagd reads 1)`, store.ErrSchemaVersion},
		{"unknown field", "allocations", "vm2/eth0", `{"v":1,"vm":"vm2","iface":"eth0","colour":"red"}`, `allocation "vm2/eth0": corrupt record: json: unknown field "colour"`, store.ErrCorrupt},
		{"bad MAC", "allocations", "vm2/eth0", `{"v":1,"vm":"vm2","iface":"eth0","mac":"zz"}`, `allocation "vm2/eth0": corrupt record: address zz: invalid MAC address`, store.ErrCorrupt},
		{"wrong key", "allocations", "vm2/eth0", `{"v":1,"vm":"vm3","iface":"eth0"}`, `allocation "vm2/eth0": corrupt record: record is for "vm3/eth0"`, store.ErrCorrupt},
		{"intent garbage", "intents", "f9", `not json`, `intent "f9": corrupt record: invalid character 'o' in literal null (expecting 'u')`, store.ErrCorrupt},
		{"intent future version", "intents", "f9", `{"v":7}`, `intent "f9": unknown schema version 7 (this vflagd reads 1)`, store.ErrSchemaVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, path := newStore(t, alloc("vm1", "eth0", "pf0", 0))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(tc.bucket)).Put([]byte(tc.key), []byte(tc.value))
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			s = open(t, path)
			defer closeStore(t, s)

			check := func(what string, err error) {
				t.Helper()
				if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.is) {
					t.Errorf("%s: %v\nwant an error containing %q, matching %v", what, err, tc.want, tc.is)
				}
			}
			if tc.bucket == "allocations" {
				_, err := s.Get(tc.key)
				check("Get", err)
				_, err = s.List()
				check("List", err)
				check("Put of another key", s.Put(alloc("vm4", "eth0", "pf0", 4)))
			} else {
				_, err := s.PendingMoves()
				check("PendingMoves", err)
				check("BeginMoves", s.BeginMoves("f1", []store.Move{move("vm1/eth0", "pf0", 0, "pf1", 0)}))
			}
		})
	}
}
