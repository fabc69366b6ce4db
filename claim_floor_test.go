package tasks_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/postgres"
)

// The claim floor (claim_floor.go): on PostgreSQL an engine's claims scan
// the due index from the first task its previous claim took. These tests
// make tasks due below that, after the engine claimed past them, in each
// way the floor must hear of, and check that they run at once: the engines
// poll once an hour (their reads of upcoming tasks come every 30 s), so a
// task the floor hid would wait for that.

// floorWait is how long a task due below the floor may take to start.
const floorWait = 5 * time.Second

// drainPast enqueues n tasks of event type "x" and waits until done has
// counted them all, so that the engine's claims have passed every task
// due before them.
func drainPast(t *testing.T, e *tasks.Engine, done *sync.WaitGroup, n int) {
	t.Helper()
	done.Add(n)
	for range n {
		enqueue(t, e, tasks.NewTask{EventType: "x"})
	}
	waitGroup(t, done, 10*time.Second)
}

// waitGroup waits for wg, failing t after d.
func waitGroup(t *testing.T, wg *sync.WaitGroup, d time.Duration) {
	t.Helper()
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("tasks did not run within %v", d)
	}
}

// counting returns the funcs of a test that counts its "x" and "late" tasks
// down on the returned groups.
func counting() (funcs map[string]tasks.Func, x, late *sync.WaitGroup) {
	x, late = new(sync.WaitGroup), new(sync.WaitGroup)
	return map[string]tasks.Func{
		"x":    func(context.Context, *tasks.Task) error { x.Done(); return nil },
		"late": func(context.Context, *tasks.Task) error { late.Done(); return nil },
	}, x, late
}

// Tasks that waited for their key, and become due again at the time they
// first were when the limit is deleted, start at once.
func TestEngine_WaitingTasksRunWhenLimitDeleted(t *testing.T) {
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		ctx := t.Context()
		funcs, x, late := counting()
		e := startEngine(t, newStore(t), &tasks.Config{Workers: 4, PollInterval: time.Hour}, funcs)
		if _, err := e.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "w", Paused: true}); err != nil {
			t.Fatal(err)
		}
		late.Add(3)
		for range 3 {
			enqueue(t, e, tasks.NewTask{EventType: "late", FlowKey: "w"})
		}
		drainPast(t, e, x, 200)
		if err := e.DeleteLimit(ctx, "app_1", "w"); err != nil {
			t.Fatal(err)
		}
		waitGroup(t, late, floorWait)
	})
}

// A task stored in a transaction that commits after the engine claimed
// tasks stored later is due from the transaction's start: it starts at
// once when the transaction commits.
func TestPostgres_EnqueueTxCommittedLate(t *testing.T) {
	t.Parallel()
	testTxCommittedLate(t, func(s tasks.Store) tasks.Store { return s }, time.Hour, floorWait)
}

// testTxCommittedLate enqueues a task in a transaction, drains tasks
// stored after it, commits, and waits up to wait for the task to start, on
// a PostgreSQL store shown to the engine through wrap, polled every poll.
func testTxCommittedLate(t *testing.T, wrap func(tasks.Store) tasks.Store, poll, wait time.Duration) {
	db, pg := floorStore(t)
	funcs, x, late := counting()
	e := startEngine(t, wrap(pg), &tasks.Config{Workers: 4, PollInterval: poll}, funcs)
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	late.Add(1)
	if _, err := e.EnqueueTx(t.Context(), tx, tasks.NewTask{AppID: "app_1", EventType: "late"}); err != nil {
		t.Fatal(err)
	}
	drainPast(t, e, x, 200)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	waitGroup(t, late, wait)
}

// A task that another transaction held locked while this engine claimed
// past it, and then left pending, starts after the next read of the
// upcoming tasks: within the poll interval, as a task whose notification
// was lost. The transaction is another engine's claim that rolled back, or
// one of the application's (SELECT … FOR KEY SHARE, as a foreign key's
// check of a row referencing the task takes) that committed without
// changing the task. (Before the floor such a task started at the next
// claim; a claim cannot tell a row another claim holds from one any other
// transaction holds.)
func TestPostgres_ClaimPastHeldTask(t *testing.T) {
	for _, c := range []struct {
		name, lock string
		commit     bool
	}{
		{"claim rolled back", "FOR UPDATE", false},
		{"row lock committed", "FOR KEY SHARE", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			db, store := floorStore(t)
			funcs, x, late := counting()
			const poll = 200 * time.Millisecond
			e := newEngine(t, store, &tasks.Config{Workers: 4, PollInterval: poll})
			for et, fn := range funcs {
				e.Register(et, fn)
			}
			late.Add(1)
			held := enqueue(t, e, tasks.NewTask{EventType: "late"})
			tx, err := db.BeginTx(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			var id string
			if err := tx.QueryRowContext(t.Context(), `SELECT id FROM taskwheel_tasks WHERE id = $1 `+c.lock, held.ID).Scan(&id); err != nil {
				t.Fatal(err)
			}
			if err := e.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := e.Stop(context.Background()); err != nil {
					t.Errorf("Stop: %v", err)
				}
			})
			drainPast(t, e, x, 200)
			end := tx.Rollback
			if c.commit {
				end = tx.Commit
			}
			if err := end(); err != nil {
				t.Fatal(err)
			}
			waitGroup(t, late, poll+floorWait)
		})
	}
}

// floorStore returns a migrated PostgreSQL store in a schema of its own,
// and its database handle.
func floorStore(t *testing.T) (*sql.DB, tasks.Store) {
	t.Helper()
	s := postgresStores(t, 1)[0]
	return s.(*postgres.Store).DB(), s
}

// A store that shows the engine its times on another clock (the
// database's clock an hour ahead, as skewedStore has it for
// TestPostgres_ClockSkew) runs a task that a transaction committed late
// within the poll interval, as it does on the store's own clock
// (TestPostgres_EnqueueTxCommittedLate). The floor the engine keeps is a
// position in the store's own due order, set by the inner store from the
// rows it claimed, while the notification of the commit and the reads of
// upcoming tasks lower it with times as the Store interface shows them: an
// hour later here, so that they never lowered it, and the task, due (at the
// transaction's start) below the floor, waited for news of a rescue or a
// limit, however short the poll.
func TestPostgres_FloorSkewedStoreTxCommittedLate(t *testing.T) {
	t.Parallel()
	const poll = 200 * time.Millisecond
	testTxCommittedLate(t, func(s tasks.Store) tasks.Store {
		return skewedManyStore{skewedStore{s, time.Hour}}
	}, poll, poll+floorWait)
}

// skewedManyStore is skewedStore with InsertMany (the engine's group
// commit inserts through it), InsertTx and the notifications of Listen
// shifted too.
type skewedManyStore struct{ skewedStore }

func (s skewedManyStore) InsertMany(ctx context.Context, ts []*tasks.Task) ([]*tasks.Task, error) {
	in := make([]*tasks.Task, len(ts))
	for i, t := range ts {
		c := *t
		if c.ScheduledRunTime != nil {
			c.ScheduledRunTime = new(c.ScheduledRunTime.Add(-s.skew))
		}
		in[i] = &c
	}
	got, err := s.skewedStore.Store.InsertMany(ctx, in)
	for _, t := range got {
		if t != nil {
			s.out(t)
		}
	}
	return got, err
}

func (s skewedManyStore) Listen(ctx context.Context, listening func(), notify func(tasks.Due)) error {
	return s.skewedStore.Store.Listen(ctx, listening, func(d tasks.Due) {
		d.RunAt = d.RunAt.Add(s.skew)
		notify(d)
	})
}

func (s skewedManyStore) InsertTx(ctx context.Context, tx *sql.Tx, t *tasks.Task) (*tasks.Task, error) {
	in := *t
	if in.ScheduledRunTime != nil {
		in.ScheduledRunTime = new(in.ScheduledRunTime.Add(-s.skew))
	}
	got, err := s.skewedStore.Store.InsertTx(ctx, tx, &in)
	if got != nil {
		got = s.out(got)
	}
	return got, err
}
