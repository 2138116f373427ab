package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/vflag/vflag/vfmgr/store"
)

// BenchmarkCommitMoves256 is the persistence part of a failover of 256 VMs:
// BeginMoves (written ahead) and CommitMoves of 256 moves, each an fsynced
// bbolt transaction on the real filesystem under t.TempDir(). Besides ns/op
// (both together) it reports begin-ms/op and commit-ms/op.
func BenchmarkCommitMoves256(b *testing.B) {
	const n = 256
	s, _ := newStore(b)
	for i := range n {
		if err := s.Put(alloc(fmt.Sprintf("vm%03d", i), "eth0", "pf0", i)); err != nil {
			b.Fatal(err)
		}
	}
	// Iteration k moves every VM from pf(k%2) to pf((k+1)%2).
	plans := [2][]store.Move{}
	for i := range n {
		key := fmt.Sprintf("vm%03d/eth0", i)
		plans[0] = append(plans[0], move(key, "pf0", i, "pf1", i))
		plans[1] = append(plans[1], move(key, "pf1", i, "pf0", i))
	}
	var begin, commit time.Duration
	b.ResetTimer()
	for k := 0; b.Loop(); k++ {
		id := fmt.Sprintf("f%09d", k)
		t0 := time.Now()
		if err := s.BeginMoves(id, plans[k%2]); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := s.CommitMoves(id); err != nil {
			b.Fatal(err)
		}
		begin += t1.Sub(t0)
		commit += time.Since(t1)
	}
	b.ReportMetric(float64(begin.Microseconds())/1000/float64(b.N), "begin-ms/op")
	b.ReportMetric(float64(commit.Microseconds())/1000/float64(b.N), "commit-ms/op")
}
