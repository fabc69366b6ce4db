package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testkit"
)

// purgeWatch wraps a store to watch its PurgeTasks calls: how many run at
// once, across every purgeWatch that shares its counters, and which
// engines made them.
type purgeWatch struct {
	tasks.Store
	engine   int
	counters *purgeCounters
}

type purgeCounters struct {
	now, max atomic.Int32 // PurgeTasks calls running now, and at most at once
	mu       sync.Mutex
	calls    map[int]int // by engine
	deleted  map[int]int // by engine
	resigned map[int]bool
}

func newPurgeCounters() *purgeCounters {
	return &purgeCounters{calls: map[int]int{}, deleted: map[int]int{}, resigned: map[int]bool{}}
}

func (w purgeWatch) PurgeTasks(ctx context.Context, state tasks.State, olderThan time.Duration, limit int) (int, error) {
	c := w.counters
	// Counted before the call: a test that sees a task gone must find
	// the call that deleted it.
	c.mu.Lock()
	c.calls[w.engine]++
	c.mu.Unlock()
	n := c.now.Add(1)
	for m := c.max.Load(); n > m && !c.max.CompareAndSwap(m, n); m = c.max.Load() {
	}
	deleted, err := w.Store.PurgeTasks(ctx, state, olderThan, limit)
	c.now.Add(-1)
	c.mu.Lock()
	c.deleted[w.engine] += deleted
	c.mu.Unlock()
	return deleted, err
}

func (w purgeWatch) Resign(ctx context.Context, role, holder string) error {
	w.counters.mu.Lock()
	w.counters.resigned[w.engine] = true
	w.counters.mu.Unlock()
	return w.Store.Resign(ctx, role, holder)
}

// callers returns the engines that called PurgeTasks.
func (c *purgeCounters) callers() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for e := range c.calls {
		out = append(out, e)
	}
	return out
}

func (c *purgeCounters) deletedBy(engine int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deleted[engine]
}

// gone reports whether task id is no longer stored.
func gone(t *testing.T, e *tasks.Engine, id string) bool {
	t.Helper()
	_, err := e.Get(context.Background(), id)
	if err != nil && !errors.Is(err, tasks.ErrNotFound) {
		t.Fatal(err)
	}
	return err != nil
}

// TestEngine_Retention (R1) runs an engine with short retentions: its
// completed and failed tasks disappear, with their attempts, and a
// deletion is logged; canceled tasks, kept Forever, stay, as do the
// scheduled, running and retrying ones.
func TestEngine_Retention(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		var logs syncBuffer
		e := newEngine(t, newStore(t), &tasks.Config{
			RetainCompleted: 50 * time.Millisecond,
			RetainFailed:    50 * time.Millisecond,
			RetainCanceled:  tasks.Forever,
			PollInterval:    20 * time.Millisecond,
			BackoffFunc:     func(int) time.Duration { return time.Hour },
			Logger:          slog.New(slog.NewTextHandler(&logs, nil)),
		})
		tasks.SetRetentionPace(e, 20*time.Millisecond, time.Minute, 2)
		release := make(chan struct{})
		e.Register("ok", func(context.Context, *tasks.Task) error { return nil })
		e.Register("bad", func(context.Context, *tasks.Task) error { return tasks.Permanent(errors.New("no")) })
		e.Register("again", func(context.Context, *tasks.Task) error { return errors.New("later") })
		e.Register("block", func(ctx context.Context, _ *tasks.Task) error {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		})
		var doomed []string
		for i := range 5 {
			doomed = append(doomed, enqueue(t, e, tasks.NewTask{EventType: "ok", IdempotencyKey: fmt.Sprint("ok-", i)}).ID)
			doomed = append(doomed, enqueue(t, e, tasks.NewTask{EventType: "bad"}).ID)
		}
		canceled := enqueue(t, e, tasks.NewTask{EventType: "ok", RunAt: time.Now().Add(time.Hour)})
		if _, err := e.Cancel(context.Background(), canceled.ID); err != nil {
			t.Fatal(err)
		}
		scheduled := enqueue(t, e, tasks.NewTask{EventType: "ok", RunAt: time.Now().Add(time.Hour)})
		retrying := enqueue(t, e, tasks.NewTask{EventType: "again"})
		running := enqueue(t, e, tasks.NewTask{EventType: "block"})
		if err := e.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer e.Stop(context.Background())
		waitState(t, e, retrying.ID, tasks.StateRetrying)
		waitState(t, e, running.ID, tasks.StateRunning)
		waitFor(t, 10*time.Second, "finished tasks to be deleted", func() bool {
			for _, id := range doomed {
				if !gone(t, e, id) {
					return false
				}
			}
			return true
		})
		for _, id := range doomed {
			if as, err := e.Attempts(context.Background(), id); err != nil || len(as) != 0 {
				t.Errorf("attempts of deleted task %s: %d, %v; want none", id, len(as), err)
			}
		}
		// The key of a deleted task is free again.
		again := enqueue(t, e, tasks.NewTask{EventType: "ok", IdempotencyKey: "ok-0"})
		for _, id := range doomed {
			if again.ID == id {
				t.Errorf("Enqueue with a deleted task's key returned the deleted task %s", id)
			}
		}
		for _, want := range []struct {
			id    string
			state tasks.State
		}{{canceled.ID, tasks.StateCanceled}, {scheduled.ID, tasks.StateScheduled}, {retrying.ID, tasks.StateRetrying}, {running.ID, tasks.StateRunning}} {
			if got, err := e.Get(context.Background(), want.id); err != nil || got.State != want.state {
				t.Errorf("task %s: %v, %v; want it kept, %s", want.id, got, err, want.state)
			}
		}
		close(release)
		waitFor(t, 10*time.Second, "the blocked task, once completed, to be deleted", func() bool {
			return gone(t, e, running.ID)
		})
		if err := e.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if out := logs.String(); !strings.Contains(out, "deleted finished tasks past their retention") ||
			!strings.Contains(out, "completed=") || !strings.Contains(out, "failed=") {
			t.Errorf("log: want a line counting deleted tasks by state, got:\n%s", out)
		}
		if out := logs.String(); strings.Contains(out, "level=ERROR") {
			t.Errorf("log: want no error, got:\n%s", out)
		}
	})
}

// TestEngine_RetentionOneAtATime (R2) runs several engines on one store,
// as several processes share a database: only one of them deletes, never
// two batches at once, while the tasks enqueued meanwhile all run; when it
// stops, it resigns, and another engine takes over at once (well within
// the role's term).
func TestEngine_RetentionOneAtATime(t *testing.T) {
	t.Parallel()
	for _, kind := range testkit.SharedStores {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			const engines, perEngine = 3, 200
			counters := newPurgeCounters()
			var mu sync.Mutex
			runs := map[string]int{}
			es := make([]*tasks.Engine, engines)
			for i, s := range kind.Open(t, engines) {
				es[i] = newEngine(t, purgeWatch{Store: s, engine: i, counters: counters}, &tasks.Config{
					Workers:         4,
					PollInterval:    20 * time.Millisecond,
					RetainCompleted: time.Millisecond,
				})
				// A term far longer than the test: only a resignation
				// hands the role over.
				tasks.SetRetentionPace(es[i], 10*time.Millisecond, time.Hour, 5)
				es[i].Register("x", func(context.Context, *tasks.Task) error {
					mu.Lock()
					runs[fmt.Sprint(i)]++ // by engine, to see that all work
					mu.Unlock()
					return nil
				})
				if err := es[i].Start(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			stopped := make([]bool, engines)
			defer func() {
				for i, e := range es {
					if !stopped[i] {
						e.Stop(context.Background())
					}
				}
			}()
			var ids []string
			for range perEngine {
				for _, e := range es {
					ids = append(ids, enqueue(t, e, tasks.NewTask{EventType: "x"}).ID)
				}
			}
			waitFor(t, 30*time.Second, "every task to run and be deleted", func() bool {
				for _, id := range ids {
					if !gone(t, es[0], id) {
						return false
					}
				}
				return true
			})
			mu.Lock()
			total := 0
			for _, n := range runs {
				total += n
			}
			mu.Unlock()
			if total != len(ids) {
				t.Errorf("%d tasks ran, want %d, each once", total, len(ids))
			}
			holders := counters.callers()
			if len(holders) != 1 {
				t.Fatalf("engines %v called PurgeTasks, want one", holders)
			}
			holder := holders[0]
			if err := es[holder].Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			stopped[holder] = true
			counters.mu.Lock()
			resigned := counters.resigned[holder]
			counters.mu.Unlock()
			if !resigned {
				t.Errorf("engine %d stopped without resigning the role", holder)
			}
			// Tasks finished after the stop are deleted by another engine.
			other := (holder + 1) % engines
			late := enqueue(t, es[other], tasks.NewTask{EventType: "x"})
			waitFor(t, 10*time.Second, "another engine to take over and delete", func() bool {
				return gone(t, es[other], late.ID)
			})
			if got := counters.callers(); len(got) != 2 {
				t.Errorf("engines %v called PurgeTasks, want the first holder and one successor", got)
			}
			if m := counters.max.Load(); m != 1 {
				t.Errorf("up to %d PurgeTasks ran at once, want 1", m)
			}
			t.Logf("engine %d deleted %d tasks, then another took over", holder, counters.deletedBy(holder))
		})
	}
}

// blockingPurge is a store whose PurgeTasks blocks until its context ends.
type blockingPurge struct {
	tasks.Store
	entered chan struct{}
}

func (b blockingPurge) PurgeTasks(ctx context.Context, _ tasks.State, _ time.Duration, _ int) (int, error) {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return 0, ctx.Err()
}

// TestEngine_StopInterruptsRetention checks that Stop ends a retention
// pass at once, without logging its interruption as an error, and leaves
// no goroutine behind (TestMain checks).
func TestEngine_StopInterruptsRetention(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	store := blockingPurge{Store: tasks.NewMemoryStore(), entered: make(chan struct{}, 1)}
	e := newEngine(t, store, &tasks.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	tasks.SetRetentionPace(e, time.Millisecond, time.Hour, 10)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-store.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no retention pass began")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		t.Fatalf("Stop during a retention pass = %v, want nil", err)
	}
	if out := logs.String(); strings.Contains(out, "level=ERROR") {
		t.Errorf("log: want no error, got:\n%s", out)
	}
}

// TestEngine_RetentionLogsErrors checks that a failing PurgeTasks is
// logged, not dropped, and that the engine tries again at its next pass.
func TestEngine_RetentionLogsErrors(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	var calls atomic.Int32
	store := failingPurge{Store: tasks.NewMemoryStore(), calls: &calls}
	e := newEngine(t, store, &tasks.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	tasks.SetRetentionPace(e, time.Millisecond, time.Hour, 10)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer e.Stop(context.Background())
	waitFor(t, 10*time.Second, "two failed passes", func() bool { return calls.Load() >= 2 })
	if out := logs.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "disk I/O error") {
		t.Errorf("log: want the PurgeTasks error, got:\n%s", out)
	}
}

// failingPurge is a store whose PurgeTasks fails.
type failingPurge struct {
	tasks.Store
	calls *atomic.Int32
}

func (f failingPurge) PurgeTasks(context.Context, tasks.State, time.Duration, int) (int, error) {
	f.calls.Add(1)
	return 0, errors.New("disk I/O error")
}

func TestNewEngine_RetentionConfig(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		field string
		cfg   tasks.Config
	}{
		{"Config.RetainCompleted", tasks.Config{RetainCompleted: -time.Second}},
		{"Config.RetainFailed", tasks.Config{RetainFailed: -1}},
		{"Config.RetainCanceled", tasks.Config{RetainCanceled: -time.Hour}},
	} {
		_, err := tasks.NewEngine(tasks.NewMemoryStore(), &c.cfg)
		var ve *tasks.ValidationError
		if !errors.As(err, &ve) || ve.Field != c.field || !strings.Contains(err.Error(), c.field) {
			t.Errorf("NewEngine(%+v) = %v, want a *ValidationError naming %s", c.cfg, err, c.field)
		}
	}
	for _, cfg := range []tasks.Config{{}, {RetainCompleted: tasks.Forever, RetainFailed: tasks.Forever, RetainCanceled: tasks.Forever}, {RetainCompleted: time.Nanosecond}} {
		if _, err := tasks.NewEngine(tasks.NewMemoryStore(), &cfg); err != nil {
			t.Errorf("NewEngine(%+v) = %v, want nil", cfg, err)
		}
	}
}
