package tasktest_test

import (
	"database/sql"
	"encoding/json"
	"strings"
	"testing"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/postgres"
	"github.com/taskwheel/tasks/sqlite"
	"github.com/taskwheel/tasks/tasktest"
)

// store is a store the helpers are tested on, and its database (nil in
// memory).
type store struct {
	s  tasks.Store
	db *sql.DB
}

// stores are the stores the helpers are tested on.
var stores = []struct {
	name string
	open func(t *testing.T) store
}{
	{"Memory", func(*testing.T) store { return store{s: tasks.NewMemoryStore()} }},
	{"SQLite", func(t *testing.T) store {
		s, err := sqlite.Open(testdb.SQLitePath(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return store{s, s.DB()}
	}},
	{"Postgres", func(t *testing.T) store {
		s, err := postgres.New(testdb.Postgres(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		return store{s, s.DB()}
	}},
}

// forEachStore runs f as a parallel subtest on a fresh store of each kind.
func forEachStore(t *testing.T, f func(t *testing.T, s store)) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			f(t, st.open(t))
		})
	}
}

// newEngine returns an engine, not started, on s.
func newEngine(t *testing.T, s tasks.Store) *tasks.Engine {
	t.Helper()
	eng, err := tasks.NewEngine(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// enqueue enqueues a task of app and eventType with data, due now.
func enqueue(t *testing.T, eng *tasks.Engine, app, eventType, data string) *tasks.Task {
	t.Helper()
	task, err := eng.Enqueue(t.Context(), tasks.NewTask{AppID: app, EventType: eventType, Data: json.RawMessage(data)})
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func TestRequireEnqueued(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store) {
		ctx := t.Context()
		eng := newEngine(t, st.s)
		ann := enqueue(t, eng, "app_1", "user.welcome", `{"user":{"id":7,"name":"Ann"},"n":1}`)
		bob := enqueue(t, eng, "app_2", "user.welcome", `{"user":{"id":8}}`)
		report := enqueue(t, eng, "app_1", "report.daily", `{}`)

		for _, tt := range []struct {
			name string
			p    tasktest.EnqueuedParams
			want *tasks.Task
		}{
			{"ByDataSubset", tasktest.EnqueuedParams{EventType: "user.welcome", Data: json.RawMessage(`{"user":{"id":7}}`)}, ann},
			{"NumbersByValue", tasktest.EnqueuedParams{Data: json.RawMessage(`{"n":1.0}`)}, ann},
			{"ByApp", tasktest.EnqueuedParams{AppID: "app_2"}, bob},
			{"NewestFirst", tasktest.EnqueuedParams{}, report},
			{"ByState", tasktest.EnqueuedParams{EventType: "report.daily", States: []tasks.State{tasks.StateScheduled}}, report},
		} {
			if got := tasktest.RequireEnqueued(ctx, t, st.s, tt.p); got.ID != tt.want.ID {
				t.Errorf("%s: got task %s (%s), want %s", tt.name, got.ID, got.Data, tt.want.ID)
			}
		}
		if got := tasktest.FindEnqueued(ctx, t, st.s, tasktest.EnqueuedParams{EventType: "user.welcome"}); len(got) != 2 ||
			got[0].ID != bob.ID || got[1].ID != ann.ID {
			t.Errorf("FindEnqueued user.welcome: got %d tasks, want bob's then ann's", len(got))
		}
		tasktest.RequireNotEnqueued(ctx, t, st.s, tasktest.EnqueuedParams{EventType: "user.goodbye"})

		for _, tt := range []struct {
			name string
			f    func(tb testing.TB)
			want []string
		}{
			{"NoMatch", func(tb testing.TB) {
				tasktest.RequireEnqueued(ctx, tb, st.s, tasktest.EnqueuedParams{Data: json.RawMessage(`{"user":{"id":9}}`)})
			}, []string{`no task enqueued with data containing {"user":{"id":9}}`, ann.ID, `"Ann"`}},
			{"WrongState", func(tb testing.TB) {
				tasktest.RequireEnqueued(ctx, tb, st.s, tasktest.EnqueuedParams{AppID: "app_2", States: []tasks.State{tasks.StateCompleted}})
			}, []string{`app "app_2", state in [completed]`}},
			{"Enqueued", func(tb testing.TB) {
				tasktest.RequireNotEnqueued(ctx, tb, st.s, tasktest.EnqueuedParams{AppID: "app_1", EventType: "report.daily"})
			}, []string{"1 tasks enqueued", report.ID}},
			{"BadData", func(tb testing.TB) {
				tasktest.RequireEnqueued(ctx, tb, st.s, tasktest.EnqueuedParams{Data: json.RawMessage(`{`)})
			}, []string{"EnqueuedParams.Data"}},
		} {
			msg, failed := fatal(t, tt.f)
			if !failed {
				t.Errorf("%s: did not fail the test", tt.name)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%s: message %q, want it to contain %q", tt.name, msg, w)
				}
			}
		}
	})
}

// What EnqueuedParams.Data matches, as documented.
func TestEnqueuedParams_data(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		data, want string
		match      bool
	}{
		{`{"a":1,"b":2}`, `{"a":1}`, true},
		{`{"a":1}`, `{"a":1,"b":2}`, false},
		{`{"a":{"b":[{"c":1,"d":2}],"e":3}}`, `{"a":{"b":[{"c":1}]}}`, true},
		{`{"a":[1,2]}`, `{"a":[1]}`, false},
		{`{"a":[1,2]}`, `{"a":[2,1]}`, false},
		{`{"a":100}`, `{"a":1e2}`, true},
		{`{"a":12345678901234567890}`, `{"a":12345678901234567891}`, false},
		{`{"a":"1"}`, `{"a":1}`, false},
		{`{"a":null}`, `{"a":null}`, true},
		{`{}`, `{"a":null}`, false},
		{`{"a":true}`, `{"a":false}`, false},
		{`[1,{"x":1,"y":2}]`, `[1,{"x":1}]`, true},
		{`"text"`, `"text"`, true},
		{`{"a":1}`, `{}`, true},
		{`[]`, `{}`, false},
	} {
		s := tasks.NewMemoryStore()
		enqueue(t, newEngine(t, s), "app_1", "e", tt.data)
		got := len(tasktest.FindEnqueued(t.Context(), t, s, tasktest.EnqueuedParams{Data: json.RawMessage(tt.want)})) == 1
		if got != tt.match {
			t.Errorf("data %s, want %s: match %v, want %v", tt.data, tt.want, got, tt.match)
		}
	}
}

// RequireEnqueuedTx sees the tasks that EnqueueTx inserted in the
// transaction, which the store does not show before it commits, and none
// after a rollback.
func TestRequireEnqueuedTx(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store) {
		ctx := t.Context()
		eng := newEngine(t, st.s)
		p := tasktest.EnqueuedParams{AppID: "app_1", EventType: "order.placed", Data: json.RawMessage(`{"order":42}`)}
		if st.db == nil {
			msg, failed := fatal(t, func(tb testing.TB) { tasktest.RequireEnqueuedTx(ctx, tb, st.s, nil, p) })
			if !failed || !strings.Contains(msg, "not an SQLStore") {
				t.Errorf("RequireEnqueuedTx on memory: failed %v, %q; want it to say the store is not an SQLStore", failed, msg)
			}
			return
		}
		enqueue(t, eng, "app_1", "order.placed", `{"order":41}`) // committed, and not a match
		tx, err := st.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		task, err := eng.EnqueueTx(ctx, tx, tasks.NewTask{AppID: "app_1", EventType: "order.placed",
			Data: json.RawMessage(`{"order":42,"total":"9.99"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if got := tasktest.RequireEnqueuedTx(ctx, t, st.s, tx, p); got.ID != task.ID {
			t.Errorf("RequireEnqueuedTx: got %s, want %s", got.ID, task.ID)
		}
		tasktest.RequireNotEnqueued(ctx, t, st.s, p) // not committed
		msg, failed := fatal(t, func(tb testing.TB) {
			tasktest.RequireEnqueuedTx(ctx, tb, st.s, tx, tasktest.EnqueuedParams{Data: json.RawMessage(`{"order":43}`)})
		})
		if !failed || !strings.Contains(msg, "in the transaction") || !strings.Contains(msg, task.ID) {
			t.Errorf("RequireEnqueuedTx of a task not there: failed %v, %q", failed, msg)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		tx2, err := st.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx2.Rollback()
		if _, failed := fatal(t, func(tb testing.TB) { tasktest.RequireEnqueuedTx(ctx, tb, st.s, tx2, p) }); !failed {
			t.Error("RequireEnqueuedTx after a rollback: found the task")
		}
	})
}
