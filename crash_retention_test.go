package tasks_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// Retention across processes, and the death of the process that deletes.

// retainIf is the RetainCompleted of an engine that deletes completed
// tasks as soon as they are done if retain, and of one that keeps the
// default otherwise.
func retainIf(retain bool) time.Duration {
	if retain {
		return time.Nanosecond
	}
	return 0
}

// crashRetentionTerm is how long a crash test's engine holds the
// retention role without renewing it: a dead holder's role is free again
// after it.
const crashRetentionTerm = time.Second

// retainAtOnce paces e's retention for a crash test: a pass about every
// 20 ms, ten tasks a batch, so that a pass over thousands of tasks lasts
// long enough to be killed in the middle of.
func retainAtOnce(e *tasks.Engine) {
	tasks.SetRetentionPace(e, 20*time.Millisecond, crashRetentionTerm, 10)
}

// TestCrash_RetentionHolderDies runs retention in a second process while
// its engine runs tasks, SIGKILLs it in the middle of a retention pass,
// and checks that nothing is half-deleted (no attempt outlives its task),
// that an engine of this process takes the role over once the dead
// holder's term ends and deletes the rest, that every task ran, and that
// no live task was deleted.
func TestCrash_RetentionHolderDies(t *testing.T) {
	t.Parallel()
	const n = 3000
	for _, d := range crashDBs {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			db := d.open(t)
			ctx := t.Context()
			producer := newEngine(t, db.store, nil)
			var live []*tasks.Task
			for range 3 {
				live = append(live, enqueue(t, producer, tasks.NewTask{EventType: "noop", RunAt: time.Now().Add(time.Hour)}))
			}
			ids := enqueueMany(t, producer, db, "noop", n)
			count := func() int {
				var k int
				if err := db.db.QueryRow(`SELECT count(*) FROM taskwheel_tasks`).Scan(&k); err != nil {
					t.Fatal(err)
				}
				return k - len(live)
			}

			child := startCrashChild(t, db, "retainer", crashChild{Workers: 8, Retain: true})
			waitFor(t, 60*time.Second, "the child to delete some of the tasks", func() bool { return count() < n*4/5 })
			var holders int
			if err := db.db.QueryRow(`SELECT count(*) FROM taskwheel_roles WHERE role = 'retention'`).Scan(&holders); err != nil {
				t.Fatal(err)
			}
			child.kill()
			left := count()
			if holders != 1 || left == 0 {
				t.Fatalf("at the kill: %d holders of the role, %d tasks left; want 1 and some left", holders, left)
			}
			wantNoOrphanAttempts(t, db)

			var mu sync.Mutex
			ran := map[string]bool{}
			for _, r := range readCrashRuns(t, child.out) {
				ran[r.id] = true
			}
			survivor := newEngine(t, db.store, &tasks.Config{
				RetainCompleted: retainIf(true),
				Logger:          slog.New(slog.NewTextHandler(t.Output(), nil)),
				Lease:           liveLease,
				RescueInterval:  50 * time.Millisecond,
				PollInterval:    100 * time.Millisecond,
			})
			retainAtOnce(survivor)
			survivor.Register("noop", func(ctx context.Context, task *tasks.Task) error {
				mu.Lock()
				ran[task.ID] = true
				mu.Unlock()
				return nil
			})
			taken := time.Now()
			if err := survivor.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer survivor.Stop(context.Background())
			waitFor(t, 60*time.Second, "the survivor to delete the rest", func() bool { return count() == 0 })
			t.Logf("%d of %d tasks left at the kill; the survivor deleted them in %v", left, n, time.Since(taken))
			wantNoOrphanAttempts(t, db)
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if !ran[id] {
					t.Errorf("task %s deleted without having run", id)
				}
			}
			for _, task := range live {
				if got, err := survivor.Get(ctx, task.ID); err != nil || got.State != tasks.StateScheduled {
					t.Errorf("live task %s: got %v, %v; want it scheduled", task.ID, got, err)
				}
			}
		})
	}
}

// wantNoOrphanAttempts fails t if an attempt's task is gone.
func wantNoOrphanAttempts(t *testing.T, db *crashDB) {
	t.Helper()
	var orphans int
	if err := db.db.QueryRow(`SELECT count(*) FROM taskwheel_attempts a
WHERE NOT EXISTS (SELECT 1 FROM taskwheel_tasks t WHERE t.id = a.task_id)`).Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Errorf("%d attempts of deleted tasks, want 0", orphans)
	}
}
