package tasks_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/postgres"
)

// TestPostgres_Notify checks that an engine learns at once of the tasks
// another process stores, through LISTEN/NOTIFY: with polling all but off,
// a task due now, or due shortly, starts near its time. Each task is
// enqueued into an idle worker, its previous task stored and nothing
// running, so that only the notification can wake it: the first into an
// engine that has never run anything, the others after an idle gap.
func TestPostgres_Notify(t *testing.T) {
	t.Parallel()
	stores := postgresStores(t, 2)
	producerStore, workerStore := stores[0], stores[1]
	started := make(chan time.Time, 1)
	startEngine(t, workerStore, &tasks.Config{PollInterval: time.Hour}, map[string]tasks.Func{
		"x": func(ctx context.Context, task *tasks.Task) error {
			started <- time.Now()
			return nil
		},
	})
	producer := newEngine(t, producerStore, nil) // enqueues only
	waitListening(t, producerStore.(*postgres.Store).DB())
	for i, ahead := range []time.Duration{0, 0, 300 * time.Millisecond, 0} {
		if i > 0 {
			time.Sleep(100 * time.Millisecond) // idle: no re-read after a task can pick up the next
		}
		runAt := time.Now().Add(ahead)
		task := enqueue(t, producer, tasks.NewTask{EventType: "x", RunAt: runAt})
		select {
		case at := <-started:
			if late := at.Sub(runAt); late < 0 || late > 200*time.Millisecond {
				t.Errorf("task %d, due in %v, started %v after its time, want within 200ms", i+1, ahead, late)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("task %d, due in %v, never started: the notification was not heard", i+1, ahead)
		}
		waitState(t, producer, task.ID, tasks.StateCompleted)
	}
}

// waitListening waits until a connection LISTENs on the channel of db's
// schema: an engine that has started is then sure to hear of new tasks.
func waitListening(t *testing.T, db *sql.DB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND query = 'LISTEN "taskwheel_' || left(md5(current_schema()), 16) || '"'`).Scan(&n)
		switch {
		case err != nil:
			t.Fatal(err)
		case n > 0:
			return
		case time.Now().After(deadline):
			t.Fatal("no engine listens for the schema's notifications")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// plainStore hides every method but those of Store, so the engine cannot
// listen: a store whose notifications are all lost.
type plainStore struct{ tasks.Store }

// TestPostgres_LostNotification checks the bound on a lost notification:
// the engine's poll finds the task within Config.PollInterval.
func TestPostgres_LostNotification(t *testing.T) {
	t.Parallel()
	stores := postgresStores(t, 2)
	producerStore, workerStore := stores[0], stores[1]
	started := make(chan time.Time, 1)
	const poll = 200 * time.Millisecond
	startEngine(t, plainStore{workerStore}, &tasks.Config{PollInterval: poll}, map[string]tasks.Func{
		"x": func(ctx context.Context, task *tasks.Task) error {
			started <- time.Now()
			return nil
		},
	})
	producer := newEngine(t, producerStore, nil)
	enqueued := time.Now()
	enqueue(t, producer, tasks.NewTask{EventType: "x"})
	select {
	case at := <-started:
		if wait := at.Sub(enqueued); wait > poll+300*time.Millisecond {
			t.Errorf("task started %v after it was stored, want within the poll interval %v", wait, poll)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("task never started")
	}
}

// skewedStore shows the engine a store whose clock runs skew ahead of the
// process's: every time that crosses it is shifted, so to the engine the
// database's clock is an hour off its own. A fake at the narrowest seam,
// the clock, over a real PostgreSQL store.
type skewedStore struct {
	tasks.Store
	skew time.Duration
}

func (s skewedStore) out(t *tasks.Task) *tasks.Task {
	for _, p := range []**time.Time{&t.ScheduledRunTime, &t.NextAttemptAt, &t.CompletedAt, &t.LeaseExpiresAt} {
		if *p != nil {
			*p = new((*p).Add(s.skew))
		}
	}
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.Add(s.skew), t.UpdatedAt.Add(s.skew)
	return t
}

func (s skewedStore) Insert(ctx context.Context, t *tasks.Task) (*tasks.Task, error) {
	in := *t
	if in.ScheduledRunTime != nil {
		in.ScheduledRunTime = new(in.ScheduledRunTime.Add(-s.skew))
	}
	got, err := s.Store.Insert(ctx, &in)
	if got != nil {
		got = s.out(got)
	}
	return got, err
}

func (s skewedStore) Claim(ctx context.Context, limit int, lease time.Duration) ([]*tasks.Task, error) {
	ts, err := s.Store.Claim(ctx, limit, lease)
	for _, t := range ts {
		s.out(t)
	}
	return ts, err
}

func (s skewedStore) Upcoming(ctx context.Context, within time.Duration, limit int) (time.Time, []tasks.Due, error) {
	now, due, err := s.Store.Upcoming(ctx, within, limit)
	for i := range due {
		due[i].RunAt = due[i].RunAt.Add(s.skew)
	}
	return now.Add(s.skew), due, err
}

// TestPostgres_ClockSkew checks F12 on PostgreSQL: with the database's clock
// an hour ahead of the process's, tasks due 300 ms ahead on the database's
// clock start then, by the database's clock: neither an hour early nor late,
// never early.
func TestPostgres_ClockSkew(t *testing.T) {
	t.Parallel()
	db, _ := testdb.PostgresDSN(t)
	pg, err := postgres.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	dbNow := func() time.Time {
		var now time.Time
		if err := db.QueryRow("SELECT now()").Scan(&now); err != nil {
			t.Error(err)
		}
		return now
	}
	store := skewedStore{pg, time.Hour}
	type start struct{ dbAt, due time.Time }
	started := make(chan start, 5)
	e := startEngine(t, store, nil, map[string]tasks.Func{
		"x": func(ctx context.Context, task *tasks.Task) error {
			started <- start{dbNow(), task.ScheduledRunTime.Add(-store.skew)}
			return nil
		},
	})
	for range 5 {
		// The caller reads the time from the store, as its clock is the one
		// that counts.
		now, _, err := store.Upcoming(context.Background(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		enqueue(t, e, tasks.NewTask{EventType: "x", RunAt: now.Add(300 * time.Millisecond)})
	}
	for range 5 {
		select {
		case s := <-started:
			if late := s.dbAt.Sub(s.due); late < 0 || late > 200*time.Millisecond {
				t.Errorf("task started %v after its time on the database's clock, want 0 to 200ms", late)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a task did not start")
		}
	}
}
