package tasktest

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testhook"
)

// EnqueuedParams selects the tasks that [RequireEnqueued],
// [RequireEnqueuedTx], [RequireNotEnqueued] and [FindEnqueued] look for.
// The zero value selects every task.
type EnqueuedParams struct {
	// AppID selects one app's tasks; "" selects every app's.
	AppID string
	// EventType selects one event type; "" selects all.
	EventType string
	// Data, if not nil, is JSON that a task's Data must contain: each
	// member of an object in Data must be in the task's object, with a
	// value that contains the member's value, and other members of the
	// task's object are ignored; arrays must have the same length and
	// contain each other's elements in order; strings, booleans and null
	// must be equal, and numbers equal in value (1 and 1.0 are). So
	// {"user":{"id":7}} matches {"user":{"id":7,"name":"Ann"},"n":1}.
	// Defaults to nil: any data.
	Data json.RawMessage
	// States selects tasks in any of these states; nil selects all.
	States []tasks.State
}

// maxFind bounds the tasks that one assertion reads: the newest maxFind
// of those matching AppID, EventType and States.
const maxFind = 10000

// FindEnqueued returns the tasks of s that p selects, newest first, out of
// the newest 10,000 that match p's AppID, EventType and States. It fails t
// if p is invalid or s fails.
func FindEnqueued(ctx context.Context, t testing.TB, s tasks.Store, p EnqueuedParams) []*tasks.Task {
	t.Helper()
	want := p.want(t)
	lp := tasks.ListParams{AppID: p.AppID, EventType: p.EventType, States: p.States, Limit: tasks.MaxListLimit}
	var found []*tasks.Task
	for read := 0; read < maxFind; {
		ts, next, err := s.List(ctx, lp)
		if err != nil {
			t.Fatalf("tasktest: list tasks: %v", err)
		}
		read += len(ts)
		for _, task := range ts {
			if p.matches(task, want) {
				found = append(found, task)
			}
		}
		if next == "" {
			break
		}
		lp.Cursor = next
	}
	return found
}

// RequireEnqueued returns the newest task of s that p selects (see
// [FindEnqueued]), and fails t, listing the tasks it saw, if there is
// none.
func RequireEnqueued(ctx context.Context, t testing.TB, s tasks.Store, p EnqueuedParams) *tasks.Task {
	t.Helper()
	found := FindEnqueued(ctx, t, s, p)
	if len(found) == 0 {
		t.Fatalf("tasktest: no task enqueued with %s; the store has %s", p, seen(ctx, s))
	}
	return found[0]
}

// RequireNotEnqueued fails t, listing them, if s has tasks that p selects
// (see [FindEnqueued]).
func RequireNotEnqueued(ctx context.Context, t testing.TB, s tasks.Store, p EnqueuedParams) {
	t.Helper()
	if found := FindEnqueued(ctx, t, s, p); len(found) > 0 {
		t.Fatalf("tasktest: %d tasks enqueued with %s, want none: %s", len(found), p, describe(found))
	}
}

// RequireEnqueuedTx is [RequireEnqueued] read through tx, a transaction on
// the database of s, an SQL store (a *tasks.SQLStore, or a store of
// package sqlite or postgres): it sees the tasks that
// [tasks.Engine.EnqueueTx] inserted in tx before it commits, and tasks
// that other transactions committed, as tx sees them. It reads the newest
// 10,000 tasks of p's AppID and EventType. It fails t if s is not an SQL
// store.
func RequireEnqueuedTx(ctx context.Context, t testing.TB, s tasks.Store, tx *sql.Tx, p EnqueuedParams) *tasks.Task {
	t.Helper()
	want := p.want(t)
	v, err := testhook.ListTx(ctx, s, tx, p.AppID, p.EventType, maxFind)
	if err != nil {
		t.Fatalf("tasktest: %v", err)
	}
	ts := v.([]*tasks.Task)
	for _, task := range ts {
		if p.matches(task, want) {
			return task
		}
	}
	t.Fatalf("tasktest: no task enqueued with %s in the transaction; it sees %s", p, describe(ts))
	return nil
}

// want returns p.Data decoded, or nil for any data, failing t if it is
// not JSON.
func (p EnqueuedParams) want(t testing.TB) any {
	t.Helper()
	if p.Data == nil {
		return nil
	}
	v, err := decodeJSON(p.Data)
	if err != nil {
		t.Fatalf("tasktest: EnqueuedParams.Data: %v", err)
	}
	return v
}

// matches reports whether task is one that p selects; want is p.Data
// decoded.
func (p EnqueuedParams) matches(task *tasks.Task, want any) bool {
	if p.AppID != "" && task.AppID != p.AppID || p.EventType != "" && task.EventType != p.EventType ||
		p.States != nil && !slices.Contains(p.States, task.State) {
		return false
	}
	if p.Data == nil {
		return true
	}
	got, err := decodeJSON(task.Data)
	return err == nil && contains(got, want)
}

// String describes p for failure messages.
func (p EnqueuedParams) String() string {
	var parts []string
	if p.AppID != "" {
		parts = append(parts, fmt.Sprintf("app %q", p.AppID))
	}
	if p.EventType != "" {
		parts = append(parts, fmt.Sprintf("event type %q", p.EventType))
	}
	if p.Data != nil {
		parts = append(parts, "data containing "+string(p.Data))
	}
	if p.States != nil {
		parts = append(parts, fmt.Sprintf("state in %v", p.States))
	}
	if parts == nil {
		return "any app, event type and data"
	}
	return strings.Join(parts, ", ")
}

// decodeJSON decodes b keeping numbers as json.Number.
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("data after the JSON value")
	}
	return v, nil
}

// contains reports whether got contains want, decoded JSON, as
// EnqueuedParams.Data says.
func contains(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok || !contains(gv, wv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !contains(g[i], w[i]) {
				return false
			}
		}
		return true
	case json.Number:
		g, ok := got.(json.Number)
		if !ok {
			return false
		}
		a, _, errA := big.ParseFloat(string(g), 10, 256, big.ToNearestEven)
		b, _, errB := big.ParseFloat(string(w), 10, 256, big.ToNearestEven)
		return errA == nil && errB == nil && a.Cmp(b) == 0
	default: // string, bool, nil
		return got == want
	}
}

// maxDescribed bounds the tasks a failure message lists.
const maxDescribed = 10

// seen describes the newest tasks of s for a failure message.
func seen(ctx context.Context, s tasks.Store) string {
	ts, _, err := s.List(ctx, tasks.ListParams{Limit: maxDescribed + 1})
	if err != nil {
		return fmt.Sprintf("(list: %v)", err)
	}
	return describe(ts)
}

// describe lists ts for a failure message, the first maxDescribed of them.
func describe(ts []*tasks.Task) string {
	if len(ts) == 0 {
		return "no tasks"
	}
	var b strings.Builder
	for i, task := range ts {
		if i == maxDescribed {
			fmt.Fprintf(&b, "\n\t…")
			break
		}
		fmt.Fprintf(&b, "\n\t%s: app %q, event type %q, %s, data %s", task.ID, task.AppID, task.EventType, task.State, task.Data)
	}
	return b.String()
}
