package tasks_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testkit"
)

// TestFlow_LimitsKeptByClaimsOfSeveralKeys (L1): four stores sharing one
// database (four processes) claim at once, in a loop, batches of tasks of
// several keys mixed in their due order (two concurrency limits that bind,
// one that does not, a key without a limit, a paused key and a rate), and
// each finishes some of the tasks it holds after each claim, so that most
// claims are below the limits (the fast claim) and some reach them. At no
// moment do more tasks of a key run than its concurrency allows, a paused
// key starts nothing, the rate's tokens are never exceeded, no task is
// claimed twice or at an attempt other than its first, and every task but
// the paused key's runs.
func TestFlow_LimitsKeptByClaimsOfSeveralKeys(t *testing.T) {
	t.Parallel()
	const (
		app   = "app_1"
		batch = 4
		rate  = 50.0
		burst = 5
	)
	limits := []tasks.Limit{
		{AppID: app, Key: "c5", Concurrency: 5},
		{AppID: app, Key: "c2", Concurrency: 2},
		{AppID: app, Key: "wide", Concurrency: 1000},
		{AppID: app, Key: "paused", Paused: true, Concurrency: 10},
		{AppID: app, Key: "rate", Rate: rate, Burst: burst},
	}
	counts := map[string]int{"c5": 40, "c2": 30, "wide": 60, "free": 60, "paused": 15, "rate": 25}
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			stores := kind.Open(t, 4)
			e, err := tasks.NewEngine(stores[0], nil)
			if err != nil {
				t.Fatal(err)
			}
			rateSet := time.Now() // the rate's bucket is full (burst) from after then
			for _, l := range limits {
				if _, err := e.SetLimit(ctx, l); err != nil {
					t.Fatal(err)
				}
			}
			var nts []tasks.NewTask
			for key, n := range counts {
				for range n {
					nts = append(nts, tasks.NewTask{AppID: app, EventType: "x", FlowKey: key})
				}
			}
			rand.Shuffle(len(nts), func(i, j int) { nts[i], nts[j] = nts[j], nts[i] })
			if _, err := e.EnqueueMany(ctx, nts); err != nil {
				t.Fatal(err)
			}
			want := len(nts) - counts["paused"]

			var (
				mu        sync.Mutex
				claimed   = map[string]int{}
				rateStart []time.Time // after the claim returned
				done      atomic.Int64
				wg        sync.WaitGroup
				start     = make(chan struct{})
			)
			deadline := time.Now().Add(30 * time.Second)
			for _, s := range stores {
				wg.Go(func() {
					<-start
					var held []*tasks.Task
					for done.Load() < int64(want) && time.Now().Before(deadline) {
						ts, err := s.Claim(ctx, batch, time.Minute)
						if err != nil {
							t.Error(err)
							return
						}
						now := time.Now()
						mu.Lock()
						for _, tk := range ts {
							claimed[tk.ID]++
							if tk.Attempts != 1 {
								t.Errorf("task %s claimed at attempt %d, want 1", tk.ID, tk.Attempts)
							}
							switch tk.FlowKey {
							case "paused":
								t.Errorf("task %s of the paused key started", tk.ID)
							case "rate":
								rateStart = append(rateStart, now)
							}
						}
						mu.Unlock()
						held = append(held, ts...)
						// Finish the older half of what this store holds
						// (all of it when the claim found none).
						k := (len(held) + 1) / 2
						if len(ts) == 0 {
							k = len(held)
						}
						outs := make([]tasks.Outcome, k)
						for i, tk := range held[:k] {
							outs[i] = tasks.Outcome{ID: tk.ID, Attempt: tk.Attempts, State: tasks.StateCompleted}
						}
						if k > 0 {
							if _, err := s.Finish(ctx, outs); err != nil {
								t.Error(err)
								return
							}
							done.Add(int64(k))
						}
						held = held[k:]
					}
				})
			}
			// Watch the running tasks of each limited key meanwhile.
			watched := make(chan struct{})
			go func() {
				defer close(watched)
				<-start
				for done.Load() < int64(want) && time.Now().Before(deadline) && !t.Failed() {
					for _, l := range limits {
						got, err := e.Limit(ctx, app, l.Key)
						if err != nil {
							t.Error(err)
							return
						}
						if l.Paused && got.Running > 0 || l.Concurrency > 0 && got.Running > l.Concurrency {
							t.Errorf("key %s: %d running under %+v", l.Key, got.Running, l)
						}
					}
				}
			}()
			close(start)
			wg.Wait()
			<-watched
			if n := done.Load(); n != int64(want) {
				t.Fatalf("%d tasks ran in 30 s, want %d", n, want)
			}
			if len(claimed) != want {
				t.Errorf("claimed %d tasks, want %d", len(claimed), want)
			}
			for id, n := range claimed {
				if n != 1 {
					t.Errorf("task %s claimed %d times", id, n)
				}
			}
			// The rate: by each start, at most burst + rate × the time
			// since the limit was set (the clock read after the claim
			// returned, so the bound is generous).
			for i, at := range rateStart {
				if most := burst + rate*at.Sub(rateSet).Seconds(); float64(i+1) > most+1e-9 {
					t.Errorf("start %d of the rate's key at %v after the limit was set: more than %.2f", i+1, at.Sub(rateSet), most)
				}
			}
			// Resumed, the paused key's tasks run.
			if _, err := e.SetLimit(ctx, tasks.Limit{AppID: app, Key: "paused"}); err != nil {
				t.Fatal(err)
			}
			var ts []*tasks.Task
			for range 3 {
				got, err := stores[1].Claim(ctx, 100, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				ts = append(ts, got...)
			}
			if len(ts) != counts["paused"] {
				t.Errorf("after the resume, claimed %d tasks, want the paused key's %d", len(ts), counts["paused"])
			}
			for _, tk := range ts {
				if tk.FlowKey != "paused" || tk.Attempts != 1 {
					t.Errorf("after the resume, claimed task %s of key %s at attempt %d", tk.ID, tk.FlowKey, tk.Attempts)
				}
			}
		})
	}
}

// TestFlow_WaitingTasksBeforeNewerOnTheFastClaim: tasks that wait for a
// key's concurrency start before newer due tasks, of their key and of
// others, once the key has room again, on every store, also when the
// store that claims is on the fast claim and another store ended the
// running task.
func TestFlow_WaitingTasksBeforeNewerOnTheFastClaim(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			stores := kind.Open(t, 2)
			a, b := stores[0], stores[1]
			e, err := tasks.NewEngine(a, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "k", Concurrency: 2}); err != nil {
				t.Fatal(err)
			}
			enqueue := func(key string, n int) []string {
				t.Helper()
				var ids []string
				for range n {
					tk, err := e.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: key})
					if err != nil {
						t.Fatal(err)
					}
					ids = append(ids, tk.ID)
					// Due times a microsecond apart at least: the order
					// of the due tasks is their enqueue order.
					for t0 := time.Now(); time.Since(t0) < 2*time.Microsecond; {
					}
				}
				return ids
			}
			claim := func(s tasks.Store, n int) []*tasks.Task {
				t.Helper()
				ts, err := s.Claim(ctx, n, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				return ts
			}
			ids := func(ts []*tasks.Task) []string {
				var out []string
				for _, tk := range ts {
					out = append(out, tk.ID)
				}
				return out
			}
			// b's claims go to the fast claim: one below the limit.
			b1 := enqueue("k", 1)
			if got := ids(claim(b, 10)); fmt.Sprint(got) != fmt.Sprint(b1) {
				t.Fatalf("b's first claim: %v, want %v", got, b1)
			}
			ks := enqueue("k", 4)
			got := claim(a, 10) // one starts, three wait
			if fmt.Sprint(ids(got)) != fmt.Sprint(ks[:1]) {
				t.Fatalf("a's claim: %v, want %v", ids(got), ks[:1])
			}
			// Newer tasks of other keys and of k, then a's task of k ends.
			js := enqueue("j", 2)
			newer := enqueue("k", 1)
			if _, err := a.Finish(ctx, []tasks.Outcome{{ID: got[0].ID, Attempt: got[0].Attempts, State: tasks.StateCompleted}}); err != nil {
				t.Fatal(err)
			}
			if got := ids(claim(b, 1)); fmt.Sprint(got) != fmt.Sprint(ks[1:2]) {
				t.Errorf("b's claim of one after a slot freed: %v, want the oldest waiting task %v", got, ks[1:2])
			}
			// k is at its limit again: j's tasks start, k's wait.
			if got := ids(claim(b, 10)); fmt.Sprint(got) != fmt.Sprint(js) {
				t.Errorf("b's claim with k at its limit: %v, want j's %v", got, js)
			}
			_ = newer
		})
	}
}
