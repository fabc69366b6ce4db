package tasks_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
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

// TestFlow_LimitRunningCountsItsKeyOnly (L1): a limit's running count, and
// its claims, count the tasks whose key is the limit's, in every form
// (their event type with no flow key or an empty one, the event type as
// flow key, another event type with the key as flow key), and no task of
// another key: not one whose event type is the limit's key but whose flow
// key is another, nor one whose key differs only in case, on every store.
func TestFlow_LimitRunningCountsItsKeyOnly(t *testing.T) {
	t.Parallel()
	for _, s := range testStores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			store := s.open(t)
			e := testkit.NewEngine(t, store, nil)
			nts := []tasks.NewTask{
				{AppID: "app_1", EventType: "k"},
				{AppID: "app_1", EventType: "k", FlowKey: ""},
				{AppID: "app_1", EventType: "k", FlowKey: "k"},
				{AppID: "app_1", EventType: "x", FlowKey: "k"},
				{AppID: "app_1", EventType: "k", FlowKey: "other"},
				{AppID: "app_1", EventType: "K"},
				{AppID: "app_1", EventType: "x", FlowKey: "K"},
				{AppID: "app_2", EventType: "k"},
			}
			if _, err := e.EnqueueMany(ctx, nts); err != nil {
				t.Fatal(err)
			}
			ts, err := store.Claim(ctx, len(nts), time.Minute)
			if err != nil || len(ts) != len(nts) {
				t.Fatalf("Claim = %d tasks, %v; want %d", len(ts), err, len(nts))
			}
			if _, err := e.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "k", Concurrency: 5}); err != nil {
				t.Fatal(err)
			}
			l, err := e.Limit(ctx, "app_1", "k")
			if err != nil || l.Running != 4 {
				t.Fatalf("Limit = %+v, %v; want 4 running", l, err)
			}
			more := []tasks.NewTask{{AppID: "app_1", EventType: "k"}, {AppID: "app_1", EventType: "x", FlowKey: "k"}}
			if _, err := e.EnqueueMany(ctx, more); err != nil {
				t.Fatal(err)
			}
			got, err := store.Claim(ctx, 10, time.Minute)
			if err != nil || len(got) != 1 {
				t.Fatalf("Claim with 4 of k running under a limit of 5 = %d tasks, %v; want 1", len(got), err)
			}
			finish := func(task *tasks.Task) {
				t.Helper()
				if _, err := store.Finish(ctx, []tasks.Outcome{{ID: task.ID, Attempt: task.Attempts, State: tasks.StateCompleted}}); err != nil {
					t.Fatal(err)
				}
			}
			for _, task := range ts {
				if task.AppID == "app_1" && task.FlowKey == "k" {
					continue
				}
				finish(task)
				// Another key's task ended: k's count is unchanged.
				if l, err := e.Limit(ctx, "app_1", "k"); err != nil || l.Running != 5 {
					t.Fatalf("after a task of %s/%s ended: Limit = %+v, %v; want 5 running", task.AppID, task.FlowKey, l, err)
				}
			}
			for _, task := range ts {
				if task.AppID == "app_1" && task.FlowKey == "k" {
					finish(task)
				}
			}
			if got, err := store.Claim(ctx, 10, time.Minute); err != nil || len(got) != 1 {
				t.Fatalf("Claim with 1 of k running under a limit of 5 = %d tasks, %v; want the last 1", len(got), err)
			}
		})
	}
}

// TestFlow_LimitDeletedAndSetAgain (L2): a key's limit deleted releases
// its waiting tasks, which claims then start without limit; set again
// below what runs, it holds back every task of the key until enough of
// them end, on every store, whichever way the claims went before.
func TestFlow_LimitDeletedAndSetAgain(t *testing.T) {
	t.Parallel()
	for _, s := range testStores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			store := s.open(t)
			e := testkit.NewEngine(t, store, nil)
			setLimit := func() {
				t.Helper()
				if _, err := e.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "k", Concurrency: 2}); err != nil {
					t.Fatal(err)
				}
			}
			claim := func(n, want int, when string) []*tasks.Task {
				t.Helper()
				ts, err := store.Claim(ctx, n, time.Minute)
				if err != nil || len(ts) != want {
					t.Fatalf("%s: Claim = %d tasks, %v; want %d", when, len(ts), err, want)
				}
				return ts
			}
			finish := func(ts []*tasks.Task) {
				t.Helper()
				for _, task := range ts {
					if _, err := store.Finish(ctx, []tasks.Outcome{{ID: task.ID, Attempt: task.Attempts, State: tasks.StateCompleted}}); err != nil {
						t.Fatal(err)
					}
				}
			}
			setLimit()
			nts := make([]tasks.NewTask, 10)
			for i := range nts {
				nts[i] = tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: "k"}
			}
			if _, err := e.EnqueueMany(ctx, nts); err != nil {
				t.Fatal(err)
			}
			running := claim(10, 2, "under a limit of 2")
			if err := e.DeleteLimit(ctx, "app_1", "k"); err != nil {
				t.Fatal(err)
			}
			running = append(running, claim(3, 3, "after the limit was deleted")...)
			setLimit()
			for i := range 3 {
				claim(10, 0, fmt.Sprintf("set again with 5 running, claim %d", i))
			}
			finish(running[:3])
			claim(10, 0, "set again with 2 running")
			finish(running[3:4])
			claim(10, 1, "set again with 1 running")
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

// TestFlow_WaitingTasksStartFirstAfterALimitWait (L1), on PostgreSQL: a
// claim that waited for a key's limit while another claim parked a task of
// the key starts that task, which was due first, before the due task it
// read. The one-statement claim checked whether any key had waiting tasks
// as of its own start, when none had, and claimed the newer task past the
// waiting one; the limit it locked said that one waited.
func TestFlow_WaitingTasksStartFirstAfterALimitWait(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := openPostgres(t)
	e := testkit.NewEngine(t, store, nil)
	if _, err := e.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "k", Concurrency: 5}); err != nil {
		t.Fatal(err)
	}
	older := testkit.Enqueue(t, e, tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: "k"})
	newer := testkit.Enqueue(t, e, tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: "k"}) // due after it

	// Another claim holds the key's limit and parks the older task, as a
	// claim that found the key at its limit would.
	db := store.DB()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var holder int
	for _, q := range []string{
		`SELECT pg_backend_pid() FROM taskwheel_limits WHERE app_id = 'app_1' AND flow_key = 'k' FOR UPDATE`,
		`UPDATE taskwheel_tasks SET wait_key = 'k', wait_reason = 'concurrency', parked_at = run_at,
			run_at = '9999-01-01 00:00:00+00' WHERE id = '` + older.ID + `'`,
		`UPDATE taskwheel_limits SET waiting = true WHERE app_id = 'app_1' AND flow_key = 'k'`,
	} {
		if holder == 0 {
			err = tx.QueryRowContext(ctx, q).Scan(&holder)
		} else {
			_, err = tx.ExecContext(ctx, q)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	type claimed struct {
		ts  []*tasks.Task
		err error
	}
	done := make(chan claimed, 1)
	go func() {
		ts, err := store.Claim(ctx, 10, time.Minute)
		done <- claimed{ts, err}
	}()
	for waiting := false; !waiting; {
		if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE $1 = ANY (pg_blocking_pids(pid)))`, holder).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-done:
			t.Fatalf("Claim returned %d tasks, %v, while the key's limit was held; want it to wait", len(c.ts), c.err)
		case <-time.After(time.Millisecond):
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	c := <-done
	if c.err != nil {
		t.Fatal(c.err)
	}
	var got []string
	for _, task := range c.ts {
		got = append(got, task.ID)
	}
	if want := []string{older.ID, newer.ID}; !slices.Equal(got, want) {
		t.Errorf("Claim = %v, want the waiting task, then the due one: %v", got, want)
	}
}
