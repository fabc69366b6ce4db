package tasks

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkMemoryStore_PurgeTasks measures one PurgeTasks batch of 1,000
// on a memory store holding about 200,000 completed tasks: the time the
// batch holds the store's lock, which claims wait for. ns/task is the cost
// per task deleted. Run it with -benchtime=100x.
func BenchmarkMemoryStore_PurgeTasks(b *testing.B) {
	const rows, batch = 200_000, 1000
	ctx := context.Background()
	s := newMemoryStore()
	clock := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	have, seq := 0, 0
	topUp := func() {
		for have < rows {
			ts := make([]*Task, 0, 1000)
			for range 1000 {
				seq++
				ts = append(ts, &Task{ID: fmt.Sprintf("t%07d", seq), AppID: "app_1", EventType: "e", MaxAttempts: 1})
			}
			if _, err := s.InsertMany(ctx, ts); err != nil {
				b.Fatal(err)
			}
			claimed, err := s.Claim(ctx, len(ts), time.Minute)
			if err != nil || len(claimed) != len(ts) {
				b.Fatalf("Claim: %d tasks, %v", len(claimed), err)
			}
			outs := make([]Outcome, len(claimed))
			for i, t := range claimed {
				outs[i] = Outcome{ID: t.ID, Attempt: t.Attempts, State: StateCompleted}
			}
			if _, err := s.Finish(ctx, outs); err != nil {
				b.Fatal(err)
			}
			have += len(ts)
			clock = clock.Add(time.Millisecond)
		}
		clock = clock.Add(48 * time.Hour)
	}
	topUp()
	b.ResetTimer()
	for range b.N {
		if have < rows*9/10 {
			b.StopTimer()
			topUp()
			b.StartTimer()
		}
		n, err := s.PurgeTasks(ctx, StateCompleted, time.Hour, batch)
		if err != nil || n != batch {
			b.Fatalf("PurgeTasks deleted %d tasks, error %v; want %d", n, err, batch)
		}
		have -= n
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/task")
}
