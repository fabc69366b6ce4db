package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/postgres"
)

// TestPostgres_NotifyManyProducers attacks the coalesced wake-ups
// after the commit: three producer stores (three processes) each enqueue
// concurrently, through Enqueue (group commit), EnqueueMany, and
// duplicates of idempotency keys, tasks due now and within two seconds;
// one worker, polling all but off, must start every stored task. Only the
// wake-ups can wake it, and those of one producer are merged while one is
// sent.
func TestPostgres_NotifyManyProducers(t *testing.T) {
	t.Parallel()
	stores := postgresStores(t, 4)
	workerStore := stores[0]
	var mu sync.Mutex
	started := make(map[string]bool)
	all := make(chan struct{}, 1024)
	startEngine(t, workerStore, &tasks.Config{PollInterval: time.Hour}, map[string]tasks.Func{
		"x": func(ctx context.Context, task *tasks.Task) error {
			mu.Lock()
			started[task.ID] = true
			mu.Unlock()
			all <- struct{}{}
			return nil
		},
	})
	waitListening(t, workerStore.(*postgres.Store).DB())
	time.Sleep(100 * time.Millisecond) // idle: the worker's first reads are done

	var (
		wg     sync.WaitGroup
		idsMu  sync.Mutex
		ids    = make(map[string]bool)
		errsMu sync.Mutex
		errs   []error
	)
	record := func(ts ...*tasks.Task) {
		idsMu.Lock()
		defer idsMu.Unlock()
		for _, t := range ts {
			ids[t.ID] = true
		}
	}
	fail := func(err error) {
		errsMu.Lock()
		errs = append(errs, err)
		errsMu.Unlock()
	}
	for p, s := range stores[1:] {
		producer := newEngine(t, s, nil) // enqueues only
		for g := range 4 {
			wg.Go(func() {
				for i := range 15 {
					ahead := time.Duration((p*7+g*3+i)%5) * 500 * time.Millisecond
					runAt := time.Now().Add(ahead)
					switch i % 3 {
					case 0:
						task, err := producer.Enqueue(context.Background(), tasks.NewTask{AppID: "app_1", EventType: "x", RunAt: runAt})
						if err != nil {
							fail(err)
							return
						}
						record(task)
					case 1:
						ts, err := producer.EnqueueMany(context.Background(), []tasks.NewTask{
							{AppID: "app_1", EventType: "x", RunAt: runAt},
							{AppID: "app_1", EventType: "x", RunAt: runAt.Add(300 * time.Millisecond)},
						})
						if err != nil {
							fail(err)
							return
						}
						record(ts...)
					case 2:
						// Every producer races for the same keys.
						key := fmt.Sprintf("k-%d-%d", g, i)
						task, err := producer.Enqueue(context.Background(), tasks.NewTask{AppID: "app_1", EventType: "x", IdempotencyKey: key})
						if err != nil && !errors.Is(err, tasks.ErrDuplicate) {
							fail(err)
							return
						}
						record(task)
					}
					time.Sleep(time.Duration(i%4) * 20 * time.Millisecond)
				}
			})
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	deadline := time.After(15 * time.Second)
	for n := 0; n < len(ids); n++ {
		select {
		case <-all:
		case <-deadline:
			mu.Lock()
			var missing []string
			for id := range ids {
				if !started[id] {
					missing = append(missing, id)
				}
			}
			mu.Unlock()
			t.Fatalf("%d of %d tasks never started: their wake-up was lost: %v", len(missing), len(ids), missing)
		}
	}
}
