package tasks_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/postgres"
)

// TestPostgres_NotifyBatch checks that wake-ups coalesced per statement
// (one NOTIFY for a batch) lose no task of the batch: an engine in another
// store, polling all but off, starts every task of a batch from another
// process near its time, those due at once and those due later in the
// same batch, which it learns of by reading the store again.
func TestPostgres_NotifyBatch(t *testing.T) {
	t.Parallel()
	stores := postgresStores(t, 2)
	producerStore, workerStore := stores[0], stores[1]
	type start struct {
		id string
		at time.Time
	}
	started := make(chan start, 16)
	startEngine(t, workerStore, &tasks.Config{PollInterval: time.Hour}, map[string]tasks.Func{
		"x": func(ctx context.Context, task *tasks.Task) error {
			started <- start{task.ID, time.Now()}
			return nil
		},
	})
	producer := newEngine(t, producerStore, nil) // enqueues only
	waitListening(t, producerStore.(*postgres.Store).DB())
	time.Sleep(100 * time.Millisecond) // idle: the worker's first reads are done

	now := time.Now()
	var batch []tasks.NewTask
	// Without the re-read, the tasks due at +1.5 s would wait for the
	// wake-up of the latest, at +3 s, or for a read 30 s on.
	for _, ahead := range []time.Duration{0, 0, 0, 1500 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second} {
		batch = append(batch, tasks.NewTask{AppID: "app_1", EventType: "x", RunAt: now.Add(ahead)})
	}
	stored, err := producer.EnqueueMany(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	due := make(map[string]time.Time)
	for i, s := range stored {
		due[s.ID] = batch[i].RunAt
	}
	for range stored {
		select {
		case s := <-started:
			runAt, ok := due[s.id]
			if !ok {
				t.Fatalf("task %s started twice or was not in the batch", s.id)
			}
			delete(due, s.id)
			if late := s.at.Sub(runAt); late < 0 || late > time.Second {
				t.Errorf("task due at +%v started %v after its time, want within 1s", runAt.Sub(now), late)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d tasks of the batch never started: the wake-up was lost", len(due))
		}
	}
}

// TestPostgres_NotifyRetry checks that a retry written by one engine wakes
// another in another store: the first runs the task's first attempt, which
// asks to be retried 500 ms later, and stops; the second, polling all but
// off, starts the second attempt near its time.
func TestPostgres_NotifyRetry(t *testing.T) {
	t.Parallel()
	stores := postgresStores(t, 2)
	firstStore, secondStore := stores[0], stores[1]
	const delay = 500 * time.Millisecond
	release := make(chan struct{})
	first := newEngine(t, firstStore, &tasks.Config{PollInterval: time.Hour})
	failedAt := make(chan time.Time, 1)
	first.Register("x", func(ctx context.Context, task *tasks.Task) error {
		<-release // until the second engine listens
		failedAt <- time.Now()
		return tasks.RetryAfter(delay, errors.New("once more"))
	})
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	firstStopped := false
	t.Cleanup(func() {
		if !firstStopped {
			close(release)
			first.Stop(context.Background())
		}
	})
	task := enqueue(t, first, tasks.NewTask{EventType: "x", MaxAttempts: 2})
	waitState(t, first, task.ID, tasks.StateRunning)

	type start struct {
		task *tasks.Task
		at   time.Time
	}
	second := make(chan start, 1)
	startEngine(t, secondStore, &tasks.Config{PollInterval: time.Hour}, map[string]tasks.Func{
		"x": func(ctx context.Context, task *tasks.Task) error {
			second <- start{task, time.Now()}
			return nil
		},
	})
	waitListening(t, secondStore.(*postgres.Store).DB())
	time.Sleep(100 * time.Millisecond) // idle: the second engine's first reads are done
	firstStopped = true
	close(release)
	failed := <-failedAt
	if err := first.Stop(context.Background()); err != nil { // stores the retry
		t.Fatal(err)
	}
	// The retry is due delay after the attempt failed, or, on a machine so
	// busy that Stop stored it later, once stored. Without the wake-up the
	// second engine would find it at its next read, 30 s after its last.
	due := failed.Add(delay)
	if stored := time.Now(); stored.After(due) {
		due = stored
	}
	select {
	case got := <-second:
		if got.task.Attempts != 2 {
			t.Errorf("second engine ran attempt %d, want 2", got.task.Attempts)
		}
		if late := got.at.Sub(due); got.at.Before(failed.Add(delay-50*time.Millisecond)) || late > time.Second {
			t.Errorf("retry started %v after its time (or its storing), want within 1s", late)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second engine never ran the retry: its wake-up was lost")
	}
}
