package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/sqlite"
	"github.com/taskwheel/tasks/webhook"
)

// The quick start: an engine on a SQLite file runs a func for each task.
func Example() {
	dir, err := os.MkdirTemp("", "tasks-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := sqlite.Open(filepath.Join(dir, "tasks.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	eng, err := tasks.NewEngine(store, &tasks.Config{Workers: 16})
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	eng.Register("user.welcome", func(ctx context.Context, t *tasks.Task) error {
		var in struct{ Email string }
		if err := json.Unmarshal(t.Data, &in); err != nil {
			return tasks.Permanent(err) // retrying will not help
		}
		fmt.Println("welcome", in.Email)
		close(done)
		return nil
	})

	ctx := context.Background()
	if err := eng.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer eng.Stop(ctx)

	_, err = eng.Enqueue(ctx, tasks.NewTask{
		AppID:     "app_1",
		EventType: "user.welcome",
		Data:      json.RawMessage(`{"email":"ada@example.com"}`),
		RunAt:     time.Now().Add(10 * time.Millisecond), // zero: now
	})
	if err != nil {
		log.Fatal(err)
	}
	<-done
	// Output: welcome ada@example.com
}

// A func's error decides what happens next: nil completes the task, an error
// retries it with backoff, Permanent fails it, RetryAfter sets the delay.
func ExampleFunc() {
	store := tasks.NewMemoryStore()
	eng, err := tasks.NewEngine(store, &tasks.Config{MaxAttempts: 3})
	if err != nil {
		log.Fatal(err)
	}
	failed := make(chan struct{})
	eng.Register("invoice.charge", func(ctx context.Context, t *tasks.Task) error {
		if t.Attempts == 1 {
			return tasks.RetryAfter(time.Millisecond, errors.New("gateway busy"))
		}
		defer close(failed)
		return tasks.Permanent(errors.New("card declined"))
	})
	ctx := context.Background()
	if err := eng.Start(ctx); err != nil {
		log.Fatal(err)
	}
	t, err := eng.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: "invoice.charge"})
	if err != nil {
		log.Fatal(err)
	}
	<-failed
	if err := eng.Stop(ctx); err != nil { // waits until the outcome is stored
		log.Fatal(err)
	}
	t, err = eng.Get(ctx, t.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(t.State, t.Attempts, t.LastError)
	// Output: failed 2 card declined
}

// EnqueueTx stores a task in the same transaction as the application's own
// writes: if the transaction rolls back, there is no task.
func ExampleEngine_EnqueueTx() {
	dir, err := tempDir()
	if err != nil {
		log.Fatal(err)
	}
	store, err := sqlite.Open(filepath.Join(dir, "tasks.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	eng, err := tasks.NewEngine(store, nil)
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	tx, err := store.DB().BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	// ... the application's own writes in tx ...
	t, err := eng.EnqueueTx(ctx, tx, tasks.NewTask{AppID: "app_1", EventType: "order.placed"})
	if err != nil {
		log.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		log.Fatal(err)
	}
	_, err = eng.Get(ctx, t.ID)
	fmt.Println(errors.Is(err, tasks.ErrNotFound))
	// Output: true
}

// A task whose event type has no func goes to the webhook endpoints of its
// app that subscribe to it, signed with the endpoint's secret.
func ExampleEngine_CreateEndpoint() {
	eng, err := tasks.NewEngine(tasks.NewMemoryStore(), nil)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	ep, err := eng.CreateEndpoint(ctx, tasks.NewEndpoint{
		AppID:         "app_1",
		URL:           "https://example.com/hooks",
		EnabledEvents: []string{"user.created"}, // nil: every event
	})
	if err != nil {
		log.Fatal(err)
	}
	// ep.Secret ("whsec_…") is what the receiver verifies with.
	fmt.Println(ep.Status, webhook.ValidateSecret(ep.Secret) == nil)
	// Output: active true
}

// The HTTP API, mounted under a prefix, with an API key that grants one app.
func ExampleEngine_Handler() {
	eng, err := tasks.NewEngine(tasks.NewMemoryStore(), nil)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", http.StripPrefix("/api/v1", eng.Handler(&tasks.HandlerConfig{
		Keys: map[string][]string{"tw_key-of-app_1": {"app_1"}},
	})))

	srv := httptest.NewServer(mux)
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/apps/app_1/tasks", nil)
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer tw_key-of-app_1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	// Output: 200
}

// Bulk operations act on one app's tasks created in a time range (both
// bounds required), of one event type or all: ReplayFailed runs its failed
// tasks again, CancelScheduled cancels its scheduled and retrying ones.
func ExampleEngine_CancelScheduled() {
	eng, err := tasks.NewEngine(tasks.NewMemoryStore(), nil)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		_, err := eng.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: "newsletter.send",
			Data: json.RawMessage(`{}`), RunAt: time.Now().Add(24 * time.Hour)})
		if err != nil {
			log.Fatal(err)
		}
	}

	today := time.Now().UTC().Truncate(24 * time.Hour)
	n, err := eng.CancelScheduled(ctx, tasks.ListParams{
		AppID:         "app_1",
		EventType:     "newsletter.send", // "": every event type
		CreatedSince:  today,             // the tasks created today (UTC)
		CreatedBefore: today.AddDate(0, 0, 1),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("canceled", n)
	// Output: canceled 3
}
