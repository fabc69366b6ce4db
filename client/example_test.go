package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/client"
)

// The client of a tasks server: here an engine served in-process, as
// cmd/tasksd serves its API at /api/v1.
func Example() {
	ctx := context.Background()
	eng, err := tasks.NewEngine(tasks.NewMemoryStore(), &tasks.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	eng.Register("report.daily", func(context.Context, *tasks.Task) error { return nil })
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", http.StripPrefix("/api/v1", eng.Handler(&tasks.HandlerConfig{
		Keys: map[string][]string{"secret-key": {"app_1"}},
	})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	c, err := client.New(srv.URL+"/api/v1", &client.Config{Key: "secret-key"})
	if err != nil {
		log.Fatal(err)
	}
	// With an IdempotencyKey, a create is retried after a network error or
	// a 503, and makes one task however often it is sent.
	t, err := c.CreateTask(ctx, "app_1", client.NewTask{
		EventType:      "report.daily",
		RunAt:          time.Now().Add(time.Hour),
		Data:           json.RawMessage(`{"day":"2026-12-01"}`),
		IdempotencyKey: "report-2026-12-01",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(t.Status, string(t.Data))

	for t, err := range c.Tasks(ctx, "app_1", &client.ListParams{Statuses: []client.Status{client.StatusScheduled}}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("listed", t.EventType, t.IdempotencyKey)
	}

	var e *client.Error
	if _, err := c.ReplayTask(ctx, "app_1", t.ID); errors.As(err, &e) {
		fmt.Println(e.Status, e.Message) // errors.Is(err, client.ErrConflict) too
	}
	if _, err := c.GetTask(ctx, "app_1", "no-such-task"); errors.Is(err, client.ErrNotFound) {
		fmt.Println("not found")
	}
	// Output:
	// scheduled {"day":"2026-12-01"}
	// listed report.daily report-2026-12-01
	// 409 the task is scheduled; only a completed, failed or canceled task can be replayed
	// not found
}
