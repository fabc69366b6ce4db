package tasks_test

import (
	"database/sql"
	"errors"
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

// TestFlow_LimitChangesAndClaimsAtOnce, on PostgreSQL: four stores on
// one schema, as four processes. Six claimers (three stores) claim and
// finish tasks of three keys while two changers (two other goroutines, on
// two stores) set, pause, resume and delete the keys' limits at random and
// an enqueuer adds tasks. k0 and k1 always have a concurrency of 2 (their
// limits are set and paused, never deleted); k2's limit is also deleted and
// set again. No call may fail; no more than 2 tasks of k0 or k1 run at once;
// at the end no task waits for a key without a limit,
// and once every limit is deleted every task enqueued is claimed exactly
// once.
func TestFlow_LimitChangesAndClaimsAtOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	stores := testkit.PostgresStores(t, 4)
	db := stores[0].(interface{ DB() *sql.DB }).DB()
	keys := []string{"k0", "k1", "k2"}
	const concurrency = 2
	for _, k := range keys {
		if _, err := stores[3].SetLimit(ctx, &tasks.Limit{AppID: "app_1", Key: k, Concurrency: concurrency}); err != nil {
			t.Fatal(err)
		}
	}
	e := testkit.NewEngine(t, stores[3], nil)

	var (
		mu       sync.Mutex
		claimed  = map[string]int{}
		running  = map[string]map[string]bool{} // key → claimed, not finished
		most     = map[string]int{}
		enqueued atomic.Int64
		stop     atomic.Bool
		changes  atomic.Int64
		tookMu   sync.Mutex
		tooks    []time.Duration
		wg       sync.WaitGroup
	)
	for _, k := range keys {
		running[k] = map[string]bool{}
	}
	claimOnce := func(s tasks.Store) (int, error) {
		ts, err := s.Claim(ctx, 8, time.Minute)
		if err != nil {
			return 0, err
		}
		mu.Lock()
		for _, task := range ts {
			claimed[task.ID]++
			running[task.FlowKey][task.ID] = true
			most[task.FlowKey] = max(most[task.FlowKey], len(running[task.FlowKey]))
		}
		mu.Unlock()
		if len(ts) == 0 {
			return 0, nil
		}
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		outs := make([]tasks.Outcome, len(ts))
		mu.Lock()
		for i, task := range ts {
			delete(running[task.FlowKey], task.ID)
			outs[i] = tasks.Outcome{ID: task.ID, Attempt: task.Attempts, State: tasks.StateCompleted}
		}
		mu.Unlock()
		_, err = s.Finish(ctx, outs)
		return len(ts), err
	}
	for _, s := range stores[:3] {
		for range 2 {
			wg.Go(func() {
				for !stop.Load() {
					n, err := claimOnce(s)
					if err != nil {
						t.Errorf("Claim/Finish: %v", err)
						return
					}
					if n == 0 {
						time.Sleep(time.Millisecond)
					}
				}
			})
		}
	}
	wg.Go(func() {
		for !stop.Load() {
			nts := make([]tasks.NewTask, 6)
			for i := range nts {
				nts[i] = tasks.NewTask{AppID: "app_1", EventType: "x", FlowKey: keys[i%len(keys)]}
			}
			if _, err := e.EnqueueMany(ctx, nts); err != nil {
				t.Errorf("EnqueueMany: %v", err)
				return
			}
			enqueued.Add(int64(len(nts)))
			time.Sleep(2 * time.Millisecond)
		}
	})
	var changers sync.WaitGroup
	for _, s := range []tasks.Store{stores[3], stores[2]} {
		changers.Go(func() {
			for !stop.Load() {
				k := keys[rand.IntN(len(keys))]
				start := time.Now()
				var err error
				op := rand.IntN(4)
				switch {
				case op == 0:
					_, err = s.SetLimit(ctx, &tasks.Limit{AppID: "app_1", Key: k, Concurrency: concurrency, Paused: rand.IntN(2) == 0})
				case op == 1:
					_, err = s.SetLimit(ctx, &tasks.Limit{AppID: "app_1", Key: k, Concurrency: concurrency, Rate: 500, Burst: 2})
				case op == 2:
					_, err = s.PauseLimit(ctx, "app_1", k, rand.IntN(2) == 0)
				case k == "k2":
					err = s.DeleteLimit(ctx, "app_1", k)
				default:
					_, err = s.PauseLimit(ctx, "app_1", k, false)
				}
				took := time.Since(start)
				changes.Add(1)
				tookMu.Lock()
				tooks = append(tooks, took)
				tookMu.Unlock()
				if err != nil && !(k == "k2" && errors.Is(err, tasks.ErrNotFound)) {
					t.Errorf("change %d of %s: %v", op, k, err)
				}
				time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	stop.Store(true)
	changers.Wait()
	wg.Wait()
	slices.Sort(tooks)
	// How long the changes took is logged, not checked: on a loaded machine
	// a change that gives way several times may take a second without a
	// lock cycle, and TestFlow_LimitChangeGivesWayOnItsLaterTries checks
	// that a cycle ends within milliseconds.
	t.Logf("%d changes, median %v, 90th percentile %v, slowest %v; %d tasks enqueued", changes.Load(),
		tooks[len(tooks)/2], tooks[len(tooks)*9/10], tooks[len(tooks)-1], enqueued.Load())

	var stranded int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM taskwheel_tasks AS t WHERE wait_key IS NOT NULL
AND NOT EXISTS (SELECT 1 FROM taskwheel_limits AS l WHERE l.app_id = t.app_id AND l.flow_key = t.wait_key)`).Scan(&stranded); err != nil {
		t.Fatal(err)
	}
	if stranded != 0 {
		t.Errorf("%d tasks wait for a key that has no limit", stranded)
	}
	for _, k := range keys[:2] {
		if most[k] > concurrency {
			t.Errorf("%d tasks of %s ran at once, want at most %d", most[k], k, concurrency)
		}
	}

	for _, k := range keys {
		if err := stores[3].DeleteLimit(ctx, "app_1", k); err != nil && !errors.Is(err, tasks.ErrNotFound) {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		mu.Lock()
		n := len(claimed)
		mu.Unlock()
		if int64(n) == enqueued.Load() {
			break
		}
		if _, err := claimOnce(stores[0]); err != nil {
			t.Fatal(err)
		}
	}
	if int64(len(claimed)) != enqueued.Load() {
		var states []string
		rows, err := db.QueryContext(ctx, `SELECT state || ' ' || COALESCE(wait_key, '-') || ' ' || run_at::text, count(*)
FROM taskwheel_tasks WHERE state <> 'completed' GROUP BY 1`)
		if err == nil {
			for rows.Next() {
				var (
					s string
					n int
				)
				rows.Scan(&s, &n)
				states = append(states, fmt.Sprintf("%s: %d", s, n))
			}
			rows.Close()
		}
		t.Errorf("claimed %d tasks, enqueued %d; unfinished: %v", len(claimed), enqueued.Load(), states)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("task %s claimed %d times", id, n)
		}
	}
}
