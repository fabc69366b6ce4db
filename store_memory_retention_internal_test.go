package tasks

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
	"weak"
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

// TestMemoryStore_EndedQueueIsCollected checks that the queue of ended
// tasks that PurgeTasks reads does not outgrow the tasks it queues when no
// PurgeTasks reads it (a state kept Forever is never purged), and keeps no
// deleted task alive: a task failed and replayed many times, and many
// tasks completed and deleted, leave about one entry per task still in its
// state, and the deleted tasks are collected.
func TestMemoryStore_EndedQueueIsCollected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newMemoryStore()
	clock := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	run := func(id string, st State) {
		t.Helper()
		claimed, err := s.Claim(ctx, 1, time.Minute)
		if err != nil || len(claimed) != 1 || claimed[0].ID != id {
			t.Fatalf("Claim: %v, %v; want %s", claimed, err, id)
		}
		applied, err := s.Finish(ctx, []Outcome{{ID: id, Attempt: claimed[0].Attempts, State: st, Error: "x"}})
		if err != nil || !applied[0] {
			t.Fatalf("Finish: %v, %v", applied, err)
		}
		clock = clock.Add(time.Millisecond)
	}
	queued := func(st State) int { return len(s.ended[st].q) - s.ended[st].head }

	if _, err := s.Insert(ctx, &Task{ID: "cycle", AppID: "a", EventType: "e", MaxAttempts: 1}); err != nil {
		t.Fatal(err)
	}
	const cycles = 5000
	for range cycles {
		run("cycle", StateFailed)
		if _, err := s.Replay(ctx, "cycle", 1); err != nil {
			t.Fatal(err)
		}
	}
	run("cycle", StateFailed)
	if n := queued(StateFailed); n > 3 {
		t.Errorf("after %d replays of one task that failed again, %d entries queued for PurgeTasks of failed tasks, want at most 3", cycles, n)
	}

	var gone []weak.Pointer[memTask]
	for i := range cycles {
		id := fmt.Sprintf("d%05d", i)
		if _, err := s.Insert(ctx, &Task{ID: id, AppID: "a", EventType: "e", MaxAttempts: 1, Data: make([]byte, 1000)}); err != nil {
			t.Fatal(err)
		}
		gone = append(gone, weak.Make(s.tasks.at(id)))
		run(id, StateCompleted)
		if _, err := s.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := queued(StateCompleted); n > 3 {
		t.Errorf("after %d tasks completed and were deleted, %d entries queued for PurgeTasks of completed tasks, want at most 3", cycles, n)
	}
	runtime.GC()
	alive := 0
	for _, p := range gone {
		if p.Value() != nil {
			alive++
		}
	}
	if alive > 3 {
		t.Errorf("%d of %d deleted tasks are still reachable after a collection, want at most 3", alive, cycles)
	}
	runtime.KeepAlive(s) // the store itself must live for the check to mean anything
}
