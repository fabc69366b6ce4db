package tasks_test

import (
	"testing"

	"github.com/taskwheel/tasks"
)

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
