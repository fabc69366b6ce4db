package tasks_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// downStore is a store whose every method the engine's task, endpoint and
// periodic methods call fails as the SQL store fails when its database is
// down: with an error that already says "tasks: " and what failed.
type downStore struct{ tasks.Store }

func down(op string) error { return errors.New("tasks: " + op + ": connection refused") }

func (downStore) Insert(context.Context, *tasks.Task) (*tasks.Task, error) {
	return nil, down("insert task")
}
func (downStore) InsertMany(context.Context, []*tasks.Task) ([]*tasks.Task, error) {
	return nil, down("insert tasks")
}
func (downStore) InsertTx(context.Context, *sql.Tx, *tasks.Task) (*tasks.Task, error) {
	return nil, down("insert task")
}
func (downStore) Get(context.Context, string) (*tasks.Task, error) { return nil, down("get task") }
func (downStore) List(context.Context, tasks.ListParams) ([]*tasks.Task, string, error) {
	return nil, "", down("list tasks")
}
func (downStore) Cancel(context.Context, string) (*tasks.Task, error) {
	return nil, down("cancel task")
}
func (downStore) Reschedule(context.Context, string, time.Time) (*tasks.Task, error) {
	return nil, down("reschedule task")
}
func (downStore) Replay(context.Context, string, int) (*tasks.Task, error) {
	return nil, down("replay task")
}
func (downStore) Attempts(context.Context, string) ([]tasks.Attempt, error) {
	return nil, down("attempts")
}
func (downStore) InsertEndpoint(context.Context, *tasks.Endpoint) (*tasks.Endpoint, error) {
	return nil, down("insert endpoint")
}
func (downStore) GetEndpoint(context.Context, string) (*tasks.Endpoint, error) {
	return nil, down("get endpoint")
}
func (downStore) ListEndpoints(context.Context, string) ([]*tasks.Endpoint, error) {
	return nil, down("list endpoints")
}
func (downStore) DeleteEndpoint(context.Context, string) error { return down("delete endpoint") }
func (downStore) InsertPeriodic(context.Context, *tasks.PeriodicTask) (*tasks.PeriodicTask, error) {
	return nil, down("insert periodic task")
}
func (downStore) GetPeriodic(context.Context, string) (*tasks.PeriodicTask, error) {
	return nil, down("get periodic task")
}
func (downStore) ListPeriodics(context.Context, string) ([]*tasks.PeriodicTask, error) {
	return nil, down("list periodic tasks")
}
func (downStore) DeletePeriodic(context.Context, string) error { return down("delete periodic task") }

// TestEngine_ErrorsPrefixedOnce calls each Engine method that returns a
// store's error, on a store that is down and on one that answers with a
// sentinel (an unknown ID, an unsupported transaction): each error has the
// prefix "tasks: " once, at its start, and still matches its sentinel.
func TestEngine_ErrorsPrefixedOnce(t *testing.T) {
	t.Parallel()
	const id = "0190c6d2-0000-7000-8000-000000000000" // no such task, endpoint or periodic task
	calls := []struct {
		name string
		call func(ctx context.Context, e *tasks.Engine) error
		want error // the sentinel it matches on the memory store, or nil
	}{
		{"Enqueue", func(ctx context.Context, e *tasks.Engine) error {
			_, err := e.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: "x"})
			return err
		}, nil},
		{"EnqueueMany", func(ctx context.Context, e *tasks.Engine) error {
			_, err := e.EnqueueMany(ctx, []tasks.NewTask{{AppID: "app_1", EventType: "x"}, {AppID: "app_1", EventType: "y"}})
			return err
		}, nil},
		{"EnqueueTx", func(ctx context.Context, e *tasks.Engine) error {
			_, err := e.EnqueueTx(ctx, nil, tasks.NewTask{AppID: "app_1", EventType: "x"})
			return err
		}, tasks.ErrNotSupported},
		{"Get", func(ctx context.Context, e *tasks.Engine) error { _, err := e.Get(ctx, id); return err }, tasks.ErrNotFound},
		{"List", func(ctx context.Context, e *tasks.Engine) error {
			_, _, err := e.List(ctx, tasks.ListParams{AppID: "app_1"})
			return err
		}, nil},
		{"Cancel", func(ctx context.Context, e *tasks.Engine) error { _, err := e.Cancel(ctx, id); return err }, tasks.ErrNotFound},
		{"Reschedule", func(ctx context.Context, e *tasks.Engine) error {
			_, err := e.Reschedule(ctx, id, time.Now())
			return err
		}, tasks.ErrNotFound},
		{"Replay", func(ctx context.Context, e *tasks.Engine) error { _, err := e.Replay(ctx, id); return err }, tasks.ErrNotFound},
		{"Attempts", func(ctx context.Context, e *tasks.Engine) error { _, err := e.Attempts(ctx, id); return err }, nil},
		{"CreateEndpoint", func(ctx context.Context, e *tasks.Engine) error {
			_, err := e.CreateEndpoint(ctx, tasks.NewEndpoint{AppID: "app_1", URL: "https://example.com/hook"})
			return err
		}, nil},
		{"Endpoint", func(ctx context.Context, e *tasks.Engine) error { _, err := e.Endpoint(ctx, id); return err }, tasks.ErrNotFound},
		{"Endpoints", func(ctx context.Context, e *tasks.Engine) error { _, err := e.Endpoints(ctx, "app_1"); return err }, nil},
		{"UpdateEndpoint", func(ctx context.Context, e *tasks.Engine) error {
			url := "https://example.com/other"
			_, err := e.UpdateEndpoint(ctx, id, tasks.EndpointUpdate{URL: &url})
			return err
		}, tasks.ErrNotFound},
		{"RotateEndpointSecret", func(ctx context.Context, e *tasks.Engine) error {
			_, err := e.RotateEndpointSecret(ctx, id, time.Hour)
			return err
		}, tasks.ErrNotFound},
		{"DeleteEndpoint", func(ctx context.Context, e *tasks.Engine) error { return e.DeleteEndpoint(ctx, id) }, tasks.ErrNotFound},
		{"CreatePeriodic", func(ctx context.Context, e *tasks.Engine) error {
			_, err := e.CreatePeriodic(ctx, tasks.NewPeriodic{AppID: "app_1", Spec: "@hourly", EventType: "x"})
			return err
		}, nil},
		{"Periodic", func(ctx context.Context, e *tasks.Engine) error { _, err := e.Periodic(ctx, id); return err }, tasks.ErrNotFound},
		{"Periodics", func(ctx context.Context, e *tasks.Engine) error { _, err := e.Periodics(ctx, "app_1"); return err }, nil},
		{"UpdatePeriodic", func(ctx context.Context, e *tasks.Engine) error {
			spec := "@daily"
			_, err := e.UpdatePeriodic(ctx, id, tasks.PeriodicUpdate{Spec: &spec})
			return err
		}, tasks.ErrNotFound},
		{"DeletePeriodic", func(ctx context.Context, e *tasks.Engine) error { return e.DeletePeriodic(ctx, id) }, tasks.ErrNotFound},
	}
	for _, store := range []struct {
		name string
		s    tasks.Store
	}{
		{"down", downStore{tasks.NewMemoryStore()}},
		{"memory", tasks.NewMemoryStore()},
	} {
		e, err := tasks.NewEngine(store.s, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range calls {
			err := c.call(t.Context(), e)
			if store.name == "memory" && c.want == nil {
				continue // succeeds
			}
			switch {
			case err == nil:
				t.Errorf("%s on the %s store: got nil, want an error", c.name, store.name)
			case !strings.HasPrefix(err.Error(), "tasks: ") || strings.Contains(err.Error(), ": tasks: "):
				t.Errorf("%s on the %s store: got %q, want the prefix \"tasks: \" once, at the start", c.name, store.name, err)
			case store.name == "memory" && !errors.Is(err, c.want):
				t.Errorf("%s on the %s store: got %v, want it to match %v", c.name, store.name, err, c.want)
			}
		}
	}
}
