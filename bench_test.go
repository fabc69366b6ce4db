package tasks_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// BenchmarkLateness schedules 1,000 tasks spread evenly over two seconds on
// an idle engine and reports how late they started: p50, p99 and max of
// (start − scheduled time), in milliseconds. Run it with -benchtime=1x.
func BenchmarkLateness(b *testing.B) {
	for _, s := range testStores {
		b.Run(s.name, func(b *testing.B) {
			const n = 1000
			var mu sync.Mutex
			var late []time.Duration
			var early atomic.Int32
			all := make(chan struct{})
			e, err := tasks.NewEngine(s.open(b), nil)
			if err != nil {
				b.Fatal(err)
			}
			e.Register("x", func(ctx context.Context, t *tasks.Task) error {
				d := time.Since(*t.ScheduledRunTime)
				if d < 0 {
					early.Add(1)
				}
				mu.Lock()
				defer mu.Unlock()
				late = append(late, d)
				if len(late)%n == 0 {
					all <- struct{}{}
				}
				return nil
			})
			ctx := context.Background()
			if err := e.Start(ctx); err != nil {
				b.Fatal(err)
			}
			defer e.Stop(ctx)
			for b.Loop() {
				base := time.Now().Add(100 * time.Millisecond)
				for i := range n {
					at := base.Add(time.Duration(i) * 2 * time.Second / n)
					if _, err := e.Enqueue(ctx, tasks.NewTask{AppID: "bench", EventType: "x", RunAt: at}); err != nil {
						b.Fatal(err)
					}
				}
				<-all
			}
			mu.Lock()
			defer mu.Unlock()
			slices.Sort(late)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(late[len(late)/2]), "p50-ms")
			b.ReportMetric(ms(late[len(late)*99/100]), "p99-ms")
			b.ReportMetric(ms(late[len(late)-1]), "max-ms")
			b.ReportMetric(float64(early.Load()), "early")
		})
	}
}

// BenchmarkDrain enqueues b.N no-op tasks with the workers stopped, then
// starts them and measures until every task is completed: end-to-end
// tasks/s, each task claimed, run and its outcome stored.
func BenchmarkDrain(b *testing.B) {
	for _, s := range testStores {
		b.Run(s.name, func(b *testing.B) {
			var done atomic.Int64
			all := make(chan struct{})
			n := int64(b.N)
			e, err := tasks.NewEngine(s.open(b), &tasks.Config{Workers: 16})
			if err != nil {
				b.Fatal(err)
			}
			e.Register("noop", func(ctx context.Context, t *tasks.Task) error {
				if done.Add(1) == n {
					close(all)
				}
				return nil
			})
			ctx := context.Background()
			for range n {
				if _, err := e.Enqueue(ctx, tasks.NewTask{AppID: "bench", EventType: "noop"}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			if err := e.Start(ctx); err != nil {
				b.Fatal(err)
			}
			<-all
			if err := e.Stop(ctx); err != nil { // includes storing the last outcomes
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tasks/s")
		})
	}
}
