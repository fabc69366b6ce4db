package tasks_test

import (
	"context"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/postgres"
)

// TestPostgres_NotifyIDsWithSpaces checks that the wake-up triggers take a
// task ID as the text it is: tasks that the app stored by SQL under IDs
// with spaces, replayed in one statement, are replayed (the trigger that
// notes the statement's earliest and latest due time once failed on them)
// and an engine in another store, polling all but off, hears of them.
func TestPostgres_NotifyIDsWithSpaces(t *testing.T) {
	t.Parallel()
	stores := postgresStores(t, 2)
	producerStore, workerStore := stores[0], stores[1]
	db := producerStore.(*postgres.Store).DB()
	for _, id := range []string{"order a", "order b", "a  b 1700000000000000"} {
		if _, err := db.Exec(`INSERT INTO taskwheel_tasks (id, app_id, event_type, state, run_at, attempts,
			max_attempts, created_at, updated_at, completed_at) VALUES ($1, 'app_1', 'x', 'failed', now(), 1, 1, now(), now(), now())`, id); err != nil {
			t.Fatal(err)
		}
	}
	started := make(chan string, 3)
	startEngine(t, workerStore, &tasks.Config{PollInterval: time.Hour}, map[string]tasks.Func{
		"x": func(ctx context.Context, task *tasks.Task) error {
			started <- task.ID
			return nil
		},
	})
	waitListening(t, db)
	time.Sleep(100 * time.Millisecond) // idle: the worker's first reads are done
	n, _, err := producerStore.ReplayMany(context.Background(), tasks.ListParams{AppID: "app_1", States: []tasks.State{tasks.StateFailed},
		CreatedSince: time.Now().Add(-time.Hour), CreatedBefore: time.Now().Add(time.Hour)}, 1)
	if err != nil || n != 3 {
		t.Fatalf("ReplayMany: got %d, %v; want 3 replayed", n, err)
	}
	for range 3 {
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("a replayed task never started: its wake-up was lost")
		}
	}
}
