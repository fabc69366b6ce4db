package tasks_test

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testkit"
)

// TestFlow_ConcurrentClaimsKeepTheLimit (L1): four stores sharing one
// database (as four processes would) claim at once, in a loop, the due
// tasks of a key whose concurrency limit (40) is above a claim's batch
// (16), so that each claim below the limit is the one statement of a claim
// that no limit holds back. However the claims interleave, no more than 40
// tasks of the key are claimed (each claim counts the tasks that the claims
// before it started, also those that committed while it waited for the
// key's limit), none twice, and the key's capacity is used: a claim after
// them leaves 40 running.
func TestFlow_ConcurrentClaimsKeepTheLimit(t *testing.T) {
	t.Parallel()
	const (
		concurrency = 40
		batch       = 16
		n           = 200
	)
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			stores := kind.Open(t, 4)
			e, err := tasks.NewEngine(stores[0], nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "k", Concurrency: concurrency}); err != nil {
				t.Fatal(err)
			}
			nts := make([]tasks.NewTask, n)
			for i := range nts {
				nts[i] = tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: "k"}
			}
			if _, err := e.EnqueueMany(ctx, nts); err != nil {
				t.Fatal(err)
			}
			var (
				mu      sync.Mutex
				claimed = map[string]int{}
				wg      sync.WaitGroup
				start   = make(chan struct{})
			)
			claim := func(s tasks.Store) (int, error) {
				ts, err := s.Claim(ctx, batch, time.Minute)
				mu.Lock()
				defer mu.Unlock()
				for _, task := range ts {
					claimed[task.ID]++
				}
				return len(ts), err
			}
			for _, s := range stores {
				wg.Go(func() {
					<-start
					for {
						got, err := claim(s)
						if err != nil {
							t.Error(err)
						}
						if got == 0 || err != nil {
							return
						}
					}
				})
			}
			close(start)
			wg.Wait()
			for {
				got, err := claim(stores[0])
				if err != nil {
					t.Fatal(err)
				}
				if got == 0 {
					break
				}
			}
			if len(claimed) != concurrency {
				t.Errorf("claimed %d tasks of the key, want its concurrency, %d", len(claimed), concurrency)
			}
			for id, times := range claimed {
				if times != 1 {
					t.Errorf("task %s claimed %d times, want once", id, times)
				}
			}
			l, err := e.Limit(ctx, "app_1", "k")
			if err != nil {
				t.Fatal(err)
			}
			if l.Running != concurrency || l.Waiting != n-concurrency {
				t.Errorf("the limit has %d running and %d waiting, want %d and %d", l.Running, l.Waiting, concurrency, n-concurrency)
			}
		})
	}
}

// TestFlow_LoweredLimitHoldsBack (L2): a key's concurrency limit lowered
// below the tasks of the key that run holds back its due tasks until
// enough of them end, on every store: a claim then claims none (they wait)
// rather than count a negative capacity as room, and starts one once the
// running tasks are one below the new limit.
func TestFlow_LoweredLimitHoldsBack(t *testing.T) {
	t.Parallel()
	for _, s := range testStores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			store := s.open(t)
			e, err := tasks.NewEngine(store, nil)
			if err != nil {
				t.Fatal(err)
			}
			setLimit := func(c int) {
				t.Helper()
				if _, err := e.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "k", Concurrency: c}); err != nil {
					t.Fatal(err)
				}
			}
			setLimit(10)
			nts := make([]tasks.NewTask, 20)
			for i := range nts {
				nts[i] = tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: "k"}
			}
			if _, err := e.EnqueueMany(ctx, nts); err != nil {
				t.Fatal(err)
			}
			running, err := store.Claim(ctx, 10, time.Minute)
			if err != nil || len(running) != 10 {
				t.Fatalf("Claim under a limit of 10 = %d tasks, %v; want 10", len(running), err)
			}
			setLimit(3)
			for range 3 {
				if ts, err := store.Claim(ctx, 10, time.Minute); err != nil || len(ts) != 0 {
					t.Fatalf("Claim with 10 running under a limit of 3 = %d tasks, %v; want none", len(ts), err)
				}
			}
			outs := make([]tasks.Outcome, 8)
			for i, task := range running[:8] {
				outs[i] = tasks.Outcome{ID: task.ID, Attempt: task.Attempts, State: tasks.StateCompleted}
			}
			if _, err := store.Finish(ctx, outs); err != nil {
				t.Fatal(err)
			}
			ts, err := store.Claim(ctx, 10, time.Minute)
			if err != nil || len(ts) != 1 {
				t.Fatalf("Claim with 2 running under a limit of 3 = %d tasks, %v; want 1", len(ts), err)
			}
		})
	}
}

// TestFlow_RunningCountAfterManyTasks: on PostgreSQL, counting the running
// tasks of a key, which a claim under a concurrency limit does each time
// (taskwheel_running), reads the key's running tasks, not every task the
// app has run: after 3,000 tasks of the key ran under a limit and 5 run,
// the count is 5 and reads a few pages. (It read them all through a bitmap
// scan of every task of the app, finished ones too, which made a drain of
// 50,000 tasks under a limit above the workers 0.41× as fast as without
// it: tasksbench W11.) The server here runs without autovacuum, as the
// benchmarks' does, so the entries of the tasks that ended stay in the
// indexes unless the count's own scan marks them dead.
func TestFlow_RunningCountAfterManyTasks(t *testing.T) {
	t.Parallel()
	const (
		ran     = 3000
		running = 5
		batch   = 100
		// The most pages that one count may read: the index's root and
		// leaf, the running tasks' heap pages, and a few of the last
		// tasks that ended (the index entries not marked dead yet).
		maxPages = 25
	)
	ctx := t.Context()
	store := openPostgres(t)
	e, err := tasks.NewEngine(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "k", Concurrency: 10000}); err != nil {
		t.Fatal(err)
	}
	enqueue := func(n int) {
		t.Helper()
		nts := make([]tasks.NewTask, n)
		for i := range nts {
			nts[i] = tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: "k"}
		}
		if _, err := e.EnqueueMany(ctx, nts); err != nil {
			t.Fatal(err)
		}
	}
	enqueue(ran)
	for done := 0; done < ran; {
		ts, err := store.Claim(ctx, batch, time.Minute)
		if err != nil || len(ts) == 0 {
			t.Fatalf("Claim after %d of %d tasks ran = %d tasks, %v; want some", done, ran, len(ts), err)
		}
		outs := make([]tasks.Outcome, len(ts))
		for i, task := range ts {
			outs[i] = tasks.Outcome{ID: task.ID, Attempt: task.Attempts, State: tasks.StateCompleted}
		}
		if _, err := store.Finish(ctx, outs); err != nil {
			t.Fatal(err)
		}
		done += len(ts)
	}
	enqueue(running)
	if ts, err := store.Claim(ctx, batch, time.Minute); err != nil || len(ts) != running {
		t.Fatalf("Claim = %d tasks, %v; want %d", len(ts), err, running)
	}

	// One connection, so that the second count runs the plan the first
	// made (the first one's planning reads the catalogs).
	conn, err := store.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var got int
	if err := conn.QueryRowContext(ctx, `SELECT taskwheel_running('app_1', 'k')`).Scan(&got); err != nil || got != running {
		t.Fatalf("taskwheel_running = %d, %v; want %d", got, err, running)
	}
	// A count marks the entries of ended tasks dead only once no
	// transaction on the server (of any schema: other tests) may still see
	// those tasks running; until then it reads them all. So the count is
	// measured again, for a while, until it reads few pages.
	var pages int
	for deadline := time.Now().Add(10 * time.Second); ; {
		var plan []byte
		if err := conn.QueryRowContext(ctx, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT taskwheel_running('app_1', 'k')`).Scan(&plan); err != nil {
			t.Fatal(err)
		}
		var explained []struct {
			Plan struct {
				Hit  int `json:"Shared Hit Blocks"`
				Read int `json:"Shared Read Blocks"`
			}
		}
		if err := json.Unmarshal(plan, &explained); err != nil || len(explained) != 1 {
			t.Fatalf("EXPLAIN: %v in %s", err, plan)
		}
		pages = explained[0].Plan.Hit + explained[0].Plan.Read
		if pages <= maxPages || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if pages > maxPages {
		t.Errorf("counting %d running tasks after %d ran read %d pages for 10 s, want at most %d", running, ran, pages, maxPages)
	}
}
