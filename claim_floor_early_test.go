package tasks_test

import (
	"testing"
	"time"

	"github.com/taskwheel/tasks/postgres"
)

// A task that the app stored by SQL due before the year 1 (the first
// instant Go's zero time.Time stands for) is claimed like any other due
// task. A claim that is not an engine's, and an engine's first, scan the
// due tasks from the start, which was passed as the zero time.Time:
// 0001-01-01, above such a task, which no claim then took.
func TestPostgres_ClaimTaskDueBeforeYearOne(t *testing.T) {
	t.Parallel()
	store := postgresStores(t, 1)[0]
	db := store.(*postgres.Store).DB()
	if _, err := db.Exec(`INSERT INTO taskwheel_tasks (id, app_id, event_type, state, run_at, attempts,
		max_attempts, created_at, updated_at) VALUES ('early', 'app_1', 'x', 'scheduled',
		'0001-01-01 00:00:00+00'::timestamptz - interval '1 day', 0, 3, now(), now())`); err != nil {
		t.Fatal(err)
	}
	got, err := store.Claim(t.Context(), 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "early" {
		t.Fatalf("Claim: got %d tasks, want the task due before the year 1", len(got))
	}
}
