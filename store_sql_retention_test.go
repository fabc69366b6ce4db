package tasks_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// completedN makes n completed tasks (claimed and finished) and returns
// them.
func completedN(t *testing.T, s tasks.Store, n int) []*tasks.Task {
	t.Helper()
	claimed := claimN(t, s, n)
	outs := make([]tasks.Outcome, n)
	for i, c := range claimed {
		outs[i] = tasks.Outcome{ID: c.ID, Attempt: c.Attempts, State: tasks.StateCompleted,
			Attempts: []tasks.Attempt{{Number: c.Attempts, StartedAt: time.Now(), StatusCode: 200}}}
	}
	if applied, err := s.Finish(t.Context(), outs); err != nil || len(applied) != n {
		t.Fatalf("Finish: got %v, %v", applied, err)
	}
	return claimed
}

// TestPostgresStore_PurgeSkipsLockedRows checks that PurgeTasks waits for
// no row that another transaction holds (a Replay, or a user's SELECT FOR
// UPDATE of a finished task): it deletes the others and leaves that one,
// with its attempts, for a later call.
func TestPostgresStore_PurgeSkipsLockedRows(t *testing.T) {
	t.Parallel()
	s := openPostgres(t)
	ctx := t.Context()
	done := completedN(t, s, 3)
	held := done[1]
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT 1 FROM taskwheel_tasks WHERE id = $1 FOR UPDATE`, held.ID); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if n, err := s.PurgeTasks(wctx, tasks.StateCompleted, 0, 10); n != 2 || err != nil {
		t.Fatalf("PurgeTasks with a row held by another transaction: got %d, %v; want 2, nil", n, err)
	}
	if _, err := s.Get(ctx, held.ID); err != nil {
		t.Errorf("Get of the held task: %v, want it kept", err)
	}
	if as, err := s.Attempts(ctx, held.ID); err != nil || len(as) != 1 {
		t.Errorf("Attempts of the held task: got %d, %v; want 1", len(as), err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PurgeTasks(ctx, tasks.StateCompleted, 0, 10); n != 1 || err != nil {
		t.Errorf("PurgeTasks once released: got %d, %v; want 1, nil", n, err)
	}
}

// TestPostgresStore_PurgeHoldsNothingClaimsNeed checks that what a batch of
// retention holds until it commits (the finished rows it deletes, and
// their attempts) is nothing that Claim, Insert, Finish, Extend or Rescue
// waits for: each runs at once while a transaction holds a deleted batch.
func TestPostgresStore_PurgeHoldsNothingClaimsNeed(t *testing.T) {
	t.Parallel()
	s := openPostgres(t)
	ctx := t.Context()
	completedN(t, s, 5)
	running, err := s.Insert(ctx, &tasks.Task{ID: "running", AppID: "a", EventType: "x", Data: json.RawMessage(`null`), MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Claim(ctx, 1, time.Hour); err != nil || len(got) != 1 || got[0].ID != running.ID {
		t.Fatalf("Claim: got %v, %v; want the task", got, err)
	}
	// A batch of retention, as PurgeTasks runs it, left uncommitted.
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `WITH purged AS (
	DELETE FROM taskwheel_tasks WHERE id = ANY(ARRAY(
		SELECT id FROM taskwheel_tasks WHERE state = 'completed' ORDER BY completed_at FOR UPDATE SKIP LOCKED))
	RETURNING id)
DELETE FROM taskwheel_attempts WHERE task_id IN (SELECT id FROM purged)`); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.Insert(wctx, &tasks.Task{ID: "due", AppID: "a", EventType: "x", Data: json.RawMessage(`null`), MaxAttempts: 3}); err != nil {
		t.Fatalf("Insert during a retention batch: %v", err)
	}
	claimed, err := s.Claim(wctx, 10, time.Hour)
	if err != nil || len(claimed) != 1 || claimed[0].ID != "due" {
		t.Fatalf("Claim during a retention batch: got %v, %v; want the due task", claimed, err)
	}
	if _, err := s.Extend(wctx, []tasks.Lease{{ID: "due", Attempt: 1}}, time.Hour); err != nil {
		t.Fatalf("Extend during a retention batch: %v", err)
	}
	if _, err := s.Rescue(wctx, 10); err != nil {
		t.Fatalf("Rescue during a retention batch: %v", err)
	}
	outs := []tasks.Outcome{
		{ID: running.ID, Attempt: 1, State: tasks.StateCompleted, Attempts: []tasks.Attempt{{Number: 1, StartedAt: time.Now()}}},
		{ID: "due", Attempt: 1, State: tasks.StateFailed, Error: "no", Attempts: []tasks.Attempt{{Number: 1, StartedAt: time.Now(), Error: "no"}}},
	}
	if applied, err := s.Finish(wctx, outs); err != nil || !applied[0] || !applied[1] {
		t.Fatalf("Finish during a retention batch: got %v, %v; want both applied", applied, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{running.ID, "due"} {
		if as, err := s.Attempts(ctx, id); err != nil || len(as) != 1 {
			t.Errorf("Attempts(%s): got %d, %v; want 1", id, len(as), err)
		}
	}
}

// TestPostgresStore_PurgeResumesAndComesBack checks the purge cursor of
// PostgreSQL: while its batches come back full, each PurgeTasks starts
// where the last one ended, past a row it skipped because another
// transaction held it; once a batch comes back short, the next starts from
// the oldest again and deletes that row.
func TestPostgresStore_PurgeResumesAndComesBack(t *testing.T) {
	t.Parallel()
	s := openPostgres(t)
	ctx := t.Context()
	claimed := claimN(t, s, 4)
	for _, tk := range claimed { // one at a time: CompletedAt in this order
		if _, err := s.Finish(ctx, []tasks.Outcome{{ID: tk.ID, Attempt: 1, State: tasks.StateCompleted}}); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT 1 FROM taskwheel_tasks WHERE id = $1 FOR UPDATE`, claimed[0].ID); err != nil {
		t.Fatal(err)
	}
	purge := func(want int, gone ...int) {
		t.Helper()
		if n, err := s.PurgeTasks(ctx, tasks.StateCompleted, 0, 1); err != nil || n != want {
			t.Fatalf("PurgeTasks(completed, 0, 1): got %d, %v; want %d, nil", n, err, want)
		}
		for _, i := range gone {
			if _, err := s.Get(ctx, claimed[i].ID); err == nil {
				t.Fatalf("task %d of 4 is still there, want it deleted", i+1)
			}
		}
	}
	purge(1, 1) // the oldest is held: the second goes
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	purge(1, 2) // from the second on, not from the oldest
	purge(1, 3)
	if _, err := s.Get(ctx, claimed[0].ID); err != nil {
		t.Fatalf("the oldest task: got %v, want it kept while the batches come back full", err)
	}
	purge(0)    // short: the end of a pass
	purge(1, 0) // from the oldest again
}
