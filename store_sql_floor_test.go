package tasks_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/postgres"
)

// TestPostgresEngine_RunsTaskHeldWhileLaterOnesRan holds a due task's row
// in a transaction, as a claim in flight in another process would, while
// the engine claims and runs a later task; then the transaction rolls back,
// as that claim's would if its connection ended. The held task was due
// before the one the engine ran, and nothing announces it again: the engine
// must still find it (its claims scan from the last task they took, so
// only its reads of the upcoming tasks, at each poll, show it the task).
// It does so without limits, and with a limit on another key (then claims
// are the one-statement claim under limits).
func TestPostgresEngine_RunsTaskHeldWhileLaterOnesRan(t *testing.T) {
	t.Parallel()
	for _, limit := range []bool{false, true} {
		t.Run(fmt.Sprintf("limit=%v", limit), func(t *testing.T) {
			t.Parallel()
			testRunsTaskHeldWhileLaterOnesRan(t, limit)
		})
	}
}

func testRunsTaskHeldWhileLaterOnesRan(t *testing.T, limit bool) {
	ctx := t.Context()
	store := openPostgres(t)
	if limit {
		if _, err := store.SetLimit(ctx, &tasks.Limit{AppID: "a", Key: "other", Concurrency: 10}); err != nil {
			t.Fatal(err)
		}
	}
	held, err := store.Insert(ctx, &tasks.Task{ID: "held", AppID: "a", EventType: "x",
		Data: json.RawMessage(`null`), MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := store.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT 1 FROM taskwheel_tasks WHERE id = $1 FOR UPDATE`, held.ID); err != nil {
		t.Fatal(err)
	}
	ran := make(chan string, 2)
	e := startEngine(t, store, &tasks.Config{Workers: 2}, map[string]tasks.Func{
		"x": func(_ context.Context, task *tasks.Task) error {
			ran <- task.ID
			return nil
		},
	})
	later, err := e.Enqueue(ctx, tasks.NewTask{AppID: "a", EventType: "x", Data: json.RawMessage(`null`)})
	if err != nil {
		t.Fatal(err)
	}
	wantRun := func(id string) {
		t.Helper()
		select {
		case got := <-ran:
			if got != id {
				t.Fatalf("task %s ran, want %s", got, id)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("task %s did not run in 10 s", id)
		}
	}
	wantRun(later.ID)
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	wantRun(held.ID)
}

// TestPostgresStore_ClaimsTaskAnnouncedDueEarlier claims a task, which sets
// where the store's claims begin their scan, then has another engine's
// store (a second store on the database) make a task pending due an hour
// earlier. Once the store's Listen has heard of it, the next claim must
// take it without reading the upcoming tasks first.
func TestPostgresStore_ClaimsTaskAnnouncedDueEarlier(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := openPostgres(t)
	other, err := postgres.New(store.DB())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	heard := make(chan tasks.Due, 16)
	listening := make(chan struct{})
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		store.Listen(lctx, func() { close(listening) }, func(d tasks.Due) { heard <- d })
	}()
	t.Cleanup(func() { stop(); <-done })
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not start listening in 10 s")
	}

	insert := func(s tasks.Store, id string) *tasks.Task {
		t.Helper()
		task, err := s.Insert(ctx, &tasks.Task{ID: id, AppID: "a", EventType: "x",
			Data: json.RawMessage(`null`), MaxAttempts: 3})
		if err != nil {
			t.Fatal(err)
		}
		return task
	}
	first := insert(store, "first")
	if ts, err := store.Claim(ctx, 10, time.Hour); err != nil || len(ts) != 1 || ts[0].ID != first.ID {
		t.Fatalf("Claim = %v, %v; want %s", ts, err, first.ID)
	}
	early := insert(other, "early")
	if _, err := store.DB().ExecContext(ctx,
		`UPDATE taskwheel_tasks SET run_at = run_at - interval '1 hour' WHERE id = $1`, early.ID); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case d := <-heard:
			if d.ID != early.ID || !d.RunAt.Before(*first.NextAttemptAt) {
				continue // the insert's wake-up
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no wake-up for the task made due an hour earlier in 10 s")
		}
		break
	}
	if ts, err := store.Claim(ctx, 10, time.Hour); err != nil || len(ts) != 1 || ts[0].ID != early.ID {
		t.Fatalf("Claim after the wake-up = %v, %v; want %s", ts, err, early.ID)
	}
}

// TestPostgresStore_ClaimsTasksReleasedByDeleteLimit parks a task on a
// paused key, has later tasks claimed, then deletes the limit, which makes
// the parked task due again at its old due time, before every task claimed
// since: the store's next claim must take it, with no wake-up heard (the
// store is not listening) and no read of the upcoming tasks.
func TestPostgresStore_ClaimsTasksReleasedByDeleteLimit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := openPostgres(t)
	if _, err := store.SetLimit(ctx, &tasks.Limit{AppID: "a", Key: "k", Paused: true}); err != nil {
		t.Fatal(err)
	}
	insert := func(id, key string) {
		t.Helper()
		if _, err := store.Insert(ctx, &tasks.Task{ID: id, AppID: "a", EventType: "x", FlowKey: key,
			Data: json.RawMessage(`null`), MaxAttempts: 3}); err != nil {
			t.Fatal(err)
		}
	}
	claim := func(want ...string) {
		t.Helper()
		ts, err := store.Claim(ctx, 10, time.Hour)
		var got []string
		for _, task := range ts {
			got = append(got, task.ID)
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("Claim = %v, %v; want %v", got, err, want)
		}
	}
	insert("parked", "k")
	claim() // parks it
	for _, id := range []string{"later-1", "later-2", "later-3"} {
		insert(id, "")
		claim(id)
	}
	if err := store.DeleteLimit(ctx, "a", "k"); err != nil {
		t.Fatal(err)
	}
	claim("parked")
}

// TestPostgresStore_ClaimReachesTaskHeldWhileLaterOnesWereClaimed is
// TestPostgresEngine_RunsTaskHeldWhileLaterOnesRan without an engine: a
// caller that only claims (Store.Claim takes due tasks earliest first),
// and never reads the upcoming tasks, must still get the task that a
// rolled-back transaction held while a later task was claimed, and soon:
// within a second or two, not never.
func TestPostgresStore_ClaimReachesTaskHeldWhileLaterOnesWereClaimed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := openPostgres(t)
	insert := func(id string) *tasks.Task {
		t.Helper()
		task, err := store.Insert(ctx, &tasks.Task{ID: id, AppID: "a", EventType: "x",
			Data: json.RawMessage(`null`), MaxAttempts: 3})
		if err != nil {
			t.Fatal(err)
		}
		return task
	}
	held := insert("held")
	tx, err := store.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT 1 FROM taskwheel_tasks WHERE id = $1 FOR UPDATE`, held.ID); err != nil {
		t.Fatal(err)
	}
	later := insert("later")
	if ts, err := store.Claim(ctx, 10, time.Hour); err != nil || len(ts) != 1 || ts[0].ID != later.ID {
		t.Fatalf("Claim while %s is held = %v, %v; want %s", held.ID, ts, err, later.ID)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	const within = 3 * time.Second
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		ts, err := store.Claim(ctx, 10, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) > 0 {
			if len(ts) != 1 || ts[0].ID != held.ID {
				t.Fatalf("Claim after the rollback = %v; want %s", ts, held.ID)
			}
			return
		}
	}
	t.Fatalf("claims did not take %s, due and pending, in %v after the transaction that held it rolled back", held.ID, within)
}

// TestPostgresStore_ClaimsOneAtATimeInIndexOrder claims, one at a time,
// tasks whose IDs are no UUIDs (the due index orders them byte by byte,
// COLLATE "C", as Go compares strings) and whose due times, set by the
// application's own SQL, are a microsecond apart or the same: each claim
// starts its scan where the last ended, so each must take the next task in
// the index's order, and none may be left behind.
func TestPostgresStore_ClaimsOneAtATimeInIndexOrder(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := openPostgres(t)
	ids := []string{"a", "B", "é", "a ", "Z~", "a\u007f", "aé", "0", "~", "A", "b", "ab", "aB"}
	ts := make([]*tasks.Task, len(ids))
	for i, id := range ids {
		ts[i] = &tasks.Task{ID: id, AppID: "a", EventType: "x", Data: json.RawMessage(`null`), MaxAttempts: 1}
	}
	if _, err := store.InsertMany(ctx, ts); err != nil {
		t.Fatal(err)
	}
	// Due times: an hour ago, plus 0, 1 or 2 µs by the ID's length.
	if _, err := store.DB().ExecContext(ctx, `UPDATE taskwheel_tasks
		SET run_at = date_trunc('second', now()) - interval '1 hour' + (length(id) - 1) * interval '1 microsecond'`); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(ids)
	slices.SortFunc(want, func(a, b string) int {
		if c := cmp.Compare(utf8.RuneCountInString(a), utf8.RuneCountInString(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	var got []string
	for range len(ids) + 1 {
		claimed, err := store.Claim(ctx, 1, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range claimed {
			got = append(got, task.ID)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("claimed one at a time %q, want %q", got, want)
	}
}
