package tasks_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/bench"
)

// BenchmarkMemoryStore_GCHeld is what tasks held in a MemoryStore cost the
// garbage collector: b.N full collections while 100,000 tasks wait for a
// key limited to one start a second (as in W11's isolation part, where a
// drain of other tasks pays for them at every cycle it triggers). Its
// ns/task is a cycle's time divided by the tasks held, and cpu-ns/task the
// same of the process's CPU time, which other processes on the machine
// move less.
func BenchmarkMemoryStore_GCHeld(b *testing.B) {
	const held = 100_000
	ctx := b.Context()
	store := tasks.NewMemoryStore()
	e, err := tasks.NewEngine(store, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "held", Rate: 1, Burst: 1}); err != nil {
		b.Fatal(err)
	}
	nts := make([]tasks.NewTask, 1000)
	for i := range nts {
		nts[i] = tasks.NewTask{AppID: "app_1", EventType: "held", Data: []byte(`{"n":1}`)}
	}
	for range held / len(nts) {
		if _, err := e.EnqueueMany(ctx, nts); err != nil {
			b.Fatal(err)
		}
	}
	// One claim starts the one task the key allows and sets the others
	// waiting for it.
	if _, err := store.Claim(ctx, held, time.Minute); err != nil {
		b.Fatal(err)
	}
	if l, err := e.Limit(ctx, "app_1", "held"); err != nil || l.Waiting != held-1 {
		b.Fatalf("Limit: %+v, %v; want %d waiting", l, err, held-1)
	}
	runtime.GC()
	cpu := bench.CPUTime()
	for b.Loop() {
		runtime.GC()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/held, "ns/task")
	b.ReportMetric(float64((bench.CPUTime()-cpu).Nanoseconds())/float64(b.N)/held, "cpu-ns/task")
	runtime.KeepAlive(store)
}
