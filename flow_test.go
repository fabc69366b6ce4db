package tasks_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testkit"
)

// flowEngines starts n engines, one on each of n stores sharing one
// database (as n processes would), running fn for event type "x".
func flowEngines(t *testing.T, stores []tasks.Store, workers int, fn tasks.Func) []*tasks.Engine {
	t.Helper()
	es := make([]*tasks.Engine, len(stores))
	for i, s := range stores {
		es[i] = startEngine(t, s, &tasks.Config{Workers: workers}, map[string]tasks.Func{"x": fn})
	}
	return es
}

// TestFlow_ConcurrencyAcrossEngines (L1): a concurrency limit of 3 on a key,
// three engines with four workers each: never more than 3 of the key's
// tasks run at once, every task runs once, at its first attempt (waiting
// used none), and the tasks of other keys are not held back.
func TestFlow_ConcurrencyAcrossEngines(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			stores := kind.Open(t, 3)
			var (
				mu            sync.Mutex
				running, most int
				attempts      = map[string][]int{}
				otherDone     = make(chan struct{}, 1)
			)
			es := flowEngines(t, stores, 4, func(ctx context.Context, task *tasks.Task) error {
				if task.FlowKey != "k" {
					otherDone <- struct{}{}
					return nil
				}
				mu.Lock()
				running++
				most = max(most, running)
				attempts[task.ID] = append(attempts[task.ID], task.Attempts)
				mu.Unlock()
				select { // the task's work
				case <-time.After(20 * time.Millisecond):
				case <-ctx.Done():
				}
				mu.Lock()
				running--
				mu.Unlock()
				return nil
			})
			if _, err := es[0].SetLimit(t.Context(), tasks.Limit{AppID: "app_1", Key: "k", Concurrency: 3}); err != nil {
				t.Fatal(err)
			}
			const n = 60
			var ids []string
			for i := range n {
				ids = append(ids, enqueue(t, es[i%3], tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: "k"}).ID)
			}
			enqueue(t, es[1], tasks.NewTask{AppID: "app_1", EventType: "x"})
			select {
			case <-otherDone:
			case <-time.After(10 * time.Second):
				t.Fatal("a task of another key waited for k's limit")
			}
			for _, id := range ids {
				waitState(t, es[0], id, tasks.StateCompleted)
			}
			mu.Lock()
			defer mu.Unlock()
			if most > 3 {
				t.Errorf("at most %d tasks of k ran at once, want at most 3", most)
			}
			for _, id := range ids {
				if got := attempts[id]; !slices.Equal(got, []int{1}) {
					t.Errorf("task %s ran at attempts %v, want once at attempt 1", id, got)
				}
			}
		})
	}
}

// TestFlow_RateAcrossEngines (L1): a rate of 10 per second with a burst of
// 2 on a key, three engines: in any interval, no more tasks start than the
// bucket allows (2 plus 10 a second, and two for the delays of dispatch).
func TestFlow_RateAcrossEngines(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			stores := kind.Open(t, 3)
			var (
				mu     sync.Mutex
				starts []time.Time
			)
			es := flowEngines(t, stores, 4, func(ctx context.Context, task *tasks.Task) error {
				mu.Lock()
				starts = append(starts, time.Now())
				mu.Unlock()
				return nil
			})
			if _, err := es[0].SetLimit(t.Context(), tasks.Limit{AppID: "app_1", Key: "k", Rate: 10, Burst: 2}); err != nil {
				t.Fatal(err)
			}
			const n = 15
			var ids []string
			for i := range n {
				ids = append(ids, enqueue(t, es[i%3], tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: "k"}).ID)
			}
			for _, id := range ids {
				waitState(t, es[0], id, tasks.StateCompleted)
			}
			mu.Lock()
			defer mu.Unlock()
			slices.SortFunc(starts, time.Time.Compare)
			for i := range starts {
				for j := i + 1; j < len(starts); j++ {
					// Starts are seen in the funcs, after the claim and the
					// dispatch to a worker, whose delays (under -race, on a
					// loaded machine, 100 ms and more) can bring the starts
					// of two claims closer than the claims were: two tokens'
					// worth of slack.
					allowed := 2 + 10*starts[j].Sub(starts[i]).Seconds() + 2
					if float64(j-i+1) > allowed {
						t.Fatalf("%d tasks started within %v, more than the %.1f a rate of 10/s with a burst of 2 allows",
							j-i+1, starts[j].Sub(starts[i]), allowed)
					}
				}
			}
			if took := starts[len(starts)-1].Sub(starts[0]); took < 1100*time.Millisecond {
				t.Errorf("15 tasks at 10/s after a burst of 2 started within %v, want at least 1.3 s", took)
			}
		})
	}
}

// TestFlow_PauseAndResume (L2): pausing a key through one engine stops the
// starts of its tasks on every engine within 100 ms, running tasks finish,
// and resuming starts them again. On PostgreSQL the change comes from an
// engine that is not started (an API process), so the others learn of it
// through the store.
func TestFlow_PauseAndResume(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			stores := kind.Open(t, 4)
			started := make(chan time.Time, 1000)
			es := flowEngines(t, stores[:3], 2, func(ctx context.Context, task *tasks.Task) error {
				started <- time.Now()
				select {
				case <-time.After(30 * time.Millisecond):
				case <-ctx.Done():
				}
				return nil
			})
			api := es[0]
			if kind.Name == "postgres" {
				api = testkit.NewEngine(t, stores[3], nil) // never started
			}
			nts := make([]tasks.NewTask, 300)
			for i := range nts {
				nts[i] = tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: "k"}
			}
			if _, err := es[1].EnqueueMany(t.Context(), nts); err != nil {
				t.Fatal(err)
			}
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Fatal("no task started")
			}
			if _, err := api.SetLimit(t.Context(), tasks.Limit{AppID: "app_1", Key: "k", Paused: true}); err != nil {
				t.Fatal(err)
			}
			paused := time.Now()
			// Drain what started before the pause; then nothing may start.
			quiet := time.NewTimer(500 * time.Millisecond)
			defer quiet.Stop()
		watch:
			for {
				select {
				case at := <-started:
					if at.Sub(paused) > 100*time.Millisecond {
						t.Fatalf("a task of k started %v after the pause, want none after 100 ms", at.Sub(paused))
					}
				case <-quiet.C:
					break watch
				}
			}
			l, err := api.Limit(t.Context(), "app_1", "k")
			if err != nil {
				t.Fatal(err)
			}
			if l.Running != 0 || l.Waiting == 0 {
				t.Errorf("paused key: %d running, %d waiting; want 0 running (they finished) and some waiting", l.Running, l.Waiting)
			}
			ts, _, err := api.List(t.Context(), tasks.ListParams{AppID: "app_1", States: []tasks.State{tasks.StateScheduled}, Limit: 1})
			if err != nil || len(ts) != 1 || ts[0].WaitReason == "" || ts[0].Attempts != 0 {
				t.Errorf("a waiting task: got %+v, %v; want scheduled with a wait reason and no attempt", ts, err)
			}
			if _, err := api.SetLimit(t.Context(), tasks.Limit{AppID: "app_1", Key: "k"}); err != nil {
				t.Fatal(err)
			}
			resumed := time.Now()
			select {
			case at := <-started:
				t.Logf("first start %v after resuming", at.Sub(resumed))
			case <-time.After(5 * time.Second):
				t.Fatal("no task started within 5 s of resuming")
			}
		})
	}
}

// TestFlow_FairnessBetweenApps (L4): app A has thousands of due tasks; a
// task of app B enqueued while A drains starts at once, long before A's
// backlog is done; also while limits exist (A's key limited to more than
// runs, and an idle limit of another app), which claims apply. SQL stores
// only: the memory store claims in due order.
func TestFlow_FairnessBetweenApps(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		if kind.Name == "memory" {
			continue
		}
		for _, limited := range []bool{false, true} {
			name := kind.Name
			if limited {
				name += "/limited"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				testFairness(t, kind.Open(t, 1)[0], limited)
			})
		}
	}
}

// testFairness is TestFlow_FairnessBetweenApps on store, with limits if
// limited.
func testFairness(t *testing.T, store tasks.Store, limited bool) {
	var (
		aStarted  atomic.Int64
		bStarted  = make(chan int64, 1)
		firstA    = make(chan struct{})
		firstOnce sync.Once
	)
	e := startEngine(t, store, &tasks.Config{Workers: 4}, map[string]tasks.Func{
		"x": func(ctx context.Context, task *tasks.Task) error {
			if task.AppID == "app_b" {
				bStarted <- aStarted.Load()
				return nil
			}
			aStarted.Add(1)
			firstOnce.Do(func() { close(firstA) })
			select { // the task's work
			case <-time.After(time.Millisecond):
			case <-ctx.Done():
			}
			return nil
		},
	})
	if limited {
		for _, l := range []tasks.Limit{{AppID: "app_a", Key: "x", Concurrency: 100}, {AppID: "app_c", Key: "idle", Rate: 1}} {
			if _, err := e.SetLimit(t.Context(), l); err != nil {
				t.Fatal(err)
			}
		}
	}
	const backlog = 4000
	nts := make([]tasks.NewTask, backlog)
	for i := range nts {
		nts[i] = tasks.NewTask{AppID: "app_a", EventType: "x"}
	}
	if _, err := e.EnqueueMany(t.Context(), nts); err != nil {
		t.Fatal(err)
	}
	select {
	case <-firstA:
	case <-time.After(10 * time.Second):
		t.Fatal("app A's tasks did not start")
	}
	enqueued := time.Now()
	enqueue(t, e, tasks.NewTask{AppID: "app_b", EventType: "x"})
	select {
	case a := <-bStarted:
		t.Logf("B's task started %v after it was enqueued, after %d of A's %d", time.Since(enqueued), a, backlog)
		if a > backlog/2 {
			t.Errorf("B's task started after %d of A's %d tasks, want it served in turn, long before", a, backlog)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("B's task did not start")
	}
}
