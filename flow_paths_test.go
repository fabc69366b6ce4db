package tasks_test

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testkit"
)

// TestFlow_LimitKeptWhileItChanges (L1, L2): three stores sharing one
// database (as three processes would) claim and finish the tasks of a key
// with a concurrency limit of 6 in a loop, while a fourth pauses and
// resumes the key and gives it a rate and takes it away, over and over,
// its concurrency always 6: on PostgreSQL this moves the claims between
// the one-statement claim and claimFlow's transaction, and parks and
// starts waiting tasks. The key's tasks come in every form that makes it
// their key (their event type, with no flow key, an empty one, or the
// event type as flow key; another event type with it as flow key); tasks
// of another key whose event type is the key's name and tasks of another
// event type without a limit are claimed among them. However the claims
// interleave, no more than 6 tasks of the key are claimed and unfinished
// at once, every task is claimed once, and the limit counts as running
// exactly the key's tasks claimed and unfinished.
func TestFlow_LimitKeptWhileItChanges(t *testing.T) {
	t.Parallel()
	const (
		concurrency = 6
		batch       = 4
		perForm     = 40
	)
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			stores := kind.Open(t, 4)
			es := make([]*tasks.Engine, len(stores))
			for i, s := range stores {
				es[i] = testkit.NewEngine(t, s, nil)
			}
			setLimit := func(e *tasks.Engine, l tasks.Limit) {
				l.AppID, l.Key, l.Concurrency = "app_1", "k", concurrency
				if _, err := e.SetLimit(ctx, l); err != nil {
					t.Error(err)
				}
			}
			setLimit(es[3], tasks.Limit{})
			forms := []tasks.NewTask{
				{EventType: "k"},
				{EventType: "k", FlowKey: "k"},
				{EventType: "x", FlowKey: "k"},
			}
			others := []tasks.NewTask{
				{EventType: "k", FlowKey: "other"}, // its event type is the key's name
				{EventType: "x"},                   // no limit
			}
			var nts []tasks.NewTask
			for range perForm {
				for _, nt := range append(forms[:len(forms):len(forms)], others...) {
					nt.AppID = "app_1"
					nts = append(nts, nt)
				}
			}
			rand.Shuffle(len(nts), func(i, j int) { nts[i], nts[j] = nts[j], nts[i] })
			if _, err := es[3].EnqueueMany(ctx, nts); err != nil {
				t.Fatal(err)
			}

			var (
				mu       sync.Mutex
				claimed  = map[string]int{}
				runningK = map[string]bool{} // claimed, Finish not yet called: running in the store
				most     int
				done     atomic.Bool
				wg       sync.WaitGroup
			)
			deadline := time.Now().Add(60 * time.Second)
			for _, s := range stores[:3] {
				for range 2 {
					wg.Go(func() {
						for !done.Load() && time.Now().Before(deadline) {
							ts, err := s.Claim(ctx, batch, time.Minute)
							if err != nil {
								t.Error(err)
								return
							}
							mu.Lock()
							for _, task := range ts {
								claimed[task.ID]++
								if task.FlowKey == "k" {
									runningK[task.ID] = true
								}
							}
							most = max(most, len(runningK))
							if len(claimed) == len(nts) {
								done.Store(true)
							}
							mu.Unlock()
							if len(ts) == 0 {
								time.Sleep(time.Millisecond)
								continue
							}
							time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond) // the tasks' work
							outs := make([]tasks.Outcome, len(ts))
							mu.Lock()
							for i, task := range ts {
								delete(runningK, task.ID) // before Finish: never more than the store has
								outs[i] = tasks.Outcome{ID: task.ID, Attempt: task.Attempts, State: tasks.StateCompleted}
							}
							mu.Unlock()
							if _, err := s.Finish(ctx, outs); err != nil {
								t.Error(err)
								return
							}
						}
					})
				}
			}
			changes := []tasks.Limit{{Paused: true}, {}, {Rate: 1000, Burst: 1000}, {}, {Paused: true, Rate: 1000, Burst: 1}, {Rate: 1000, Burst: 1000}}
			for i := 0; !done.Load() && time.Now().Before(deadline); i++ {
				setLimit(es[i%len(es)], changes[i%len(changes)])
				time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
				if i%len(changes) == len(changes)-1 {
					setLimit(es[i%len(es)], tasks.Limit{}) // no pause, no rate: claims drain the key
					time.Sleep(20 * time.Millisecond)
				}
			}
			setLimit(es[3], tasks.Limit{})
			wg.Wait()

			mu.Lock()
			defer mu.Unlock()
			if most > concurrency {
				t.Errorf("%d tasks of k claimed and unfinished at once, want at most %d", most, concurrency)
			}
			if len(claimed) != len(nts) {
				t.Errorf("claimed %d tasks in 60 s, want all %d", len(claimed), len(nts))
			}
			for id, n := range claimed {
				if n != 1 {
					t.Errorf("task %s claimed %d times, want once", id, n)
				}
			}
		})
	}
}

// TestFlow_LimitChangesWhileClaimsPark (L2): a key held at its concurrency
// limit by a task that does not end, its due tasks parked by claims of
// three stores sharing one database as they fall due, and its limit
// paused and resumed by a fourth meanwhile: neither the claims nor the
// changes of the limit fail. On PostgreSQL a claim that met a task just
// parked by another keeps it locked (a row that FOR UPDATE locked, then
// found no longer due), while it waits for the key's limit; a change of
// the limit held that limit and waited for the task, to give it its new
// reason: PostgreSQL ended one of them (deadlock detected).
func TestFlow_LimitChangesWhileClaimsPark(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			stores := kind.Open(t, 4)
			e := testkit.NewEngine(t, stores[3], nil)
			setLimit := func(paused bool) error {
				_, err := e.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "k", Concurrency: 1, Paused: paused})
				return err
			}
			if err := setLimit(false); err != nil {
				t.Fatal(err)
			}
			enqueue := func(n int) error {
				nts := make([]tasks.NewTask, n)
				for i := range nts {
					nts[i] = tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: "k"}
				}
				_, err := e.EnqueueMany(ctx, nts)
				return err
			}
			if err := enqueue(1); err != nil {
				t.Fatal(err)
			}
			if ts, err := stores[0].Claim(ctx, 1, time.Hour); err != nil || len(ts) != 1 {
				t.Fatalf("Claim = %d tasks, %v; want 1", len(ts), err)
			}
			var (
				wg   sync.WaitGroup
				stop atomic.Bool
			)
			for _, s := range stores[:3] {
				for range 2 {
					wg.Go(func() {
						for !stop.Load() {
							ts, err := s.Claim(ctx, 16, time.Hour)
							if err != nil {
								t.Errorf("Claim: %v", err)
								return
							}
							if len(ts) != 0 {
								t.Errorf("Claim = %d tasks with the key at its limit, want none", len(ts))
								return
							}
						}
					})
				}
			}
			wg.Go(func() {
				for !stop.Load() {
					if err := enqueue(8); err != nil {
						t.Errorf("EnqueueMany: %v", err)
						return
					}
				}
			})
			for i, end := 0, time.Now().Add(2*time.Second); time.Now().Before(end) && !t.Failed(); i++ {
				if err := setLimit(i%2 == 0); err != nil {
					t.Errorf("SetLimit: %v", err)
				}
			}
			stop.Store(true)
			wg.Wait()
		})
	}
}
