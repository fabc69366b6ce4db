package tasktest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

func (su suite) testInsertMany(t *testing.T) {
	su.run(t, "StoresEveryTaskInOrder", func(h *harness) {
		later := h.now().Add(time.Hour).Truncate(time.Microsecond)
		in := []*tasks.Task{
			h.newTask(key("a"), digest(digest1), data(`{"n":1}`)),
			h.newTask(at(later), data(`[1,2]`)),
			h.newTask(app("app_2"), event("other.event"), func(t *tasks.Task) { t.MaxAttempts, t.Timeout = 7, time.Second }),
		}
		before := h.now()
		got := h.insertMany(in...)
		after := h.now()
		for i, g := range got {
			if g.ID != in[i].ID || g.AppID != in[i].AppID || g.EventType != in[i].EventType ||
				string(g.Data) != string(in[i].Data) || g.MaxAttempts != in[i].MaxAttempts ||
				g.Timeout != in[i].Timeout || g.IdempotencyKey != in[i].IdempotencyKey ||
				g.IdempotencyDigest != in[i].IdempotencyDigest {
				h.t.Errorf("InsertMany: task %d is %+v, want the fields of %+v", i, g, in[i])
			}
			h.wantState(g, tasks.StateScheduled)
			h.wantBetween(fmt.Sprintf("CreatedAt of task %d", i), &g.CreatedAt, before, after)
			h.wantSame("Get after InsertMany", h.get(g.ID), g)
		}
		h.wantBetween("NextAttemptAt of a task due now", got[0].NextAttemptAt, before, after)
		h.wantTime("NextAttemptAt of a task scheduled later", got[1].NextAttemptAt, &later)
	})

	su.run(t, "OptionalFieldsOfSomeTasks", func(h *harness) {
		// Batches in which one task sets an optional field and the others
		// leave it unset: each is stored as given. (A SQL store writes a
		// field that no task of a batch sets as a constant.)
		later := h.now().Add(time.Hour).Truncate(time.Microsecond)
		for name, opt := range map[string]func(*tasks.Task){
			"none":               func(*tasks.Task) {},
			"scheduled run time": at(later),
			"timeout":            func(t *tasks.Task) { t.Timeout = 3 * time.Second },
			"idempotency key":    func(t *tasks.Task) { t.IdempotencyKey, t.IdempotencyDigest = "k-"+t.ID, digest1 },
			"trace context":      traced,
			"flow key":           flow("f"),
		} {
			in := []*tasks.Task{h.newTask(), h.newTask(opt), h.newTask()}
			for i, g := range h.insertMany(in...) {
				wantFlow := in[i].FlowKey
				if wantFlow == "" {
					wantFlow = in[i].EventType
				}
				if g.ID != in[i].ID || g.Timeout != in[i].Timeout || g.IdempotencyKey != in[i].IdempotencyKey ||
					g.IdempotencyDigest != in[i].IdempotencyDigest || g.TraceParent != in[i].TraceParent ||
					g.TraceState != in[i].TraceState || g.FlowKey != wantFlow ||
					(g.ScheduledRunTime == nil) != (in[i].ScheduledRunTime == nil) ||
					g.ScheduledRunTime != nil && !g.ScheduledRunTime.Equal(*in[i].ScheduledRunTime) {
					h.t.Errorf("%s: InsertMany stored task %d as %+v, want the fields of %+v", name, i, g, in[i])
				}
				h.wantSame(name+": Get after InsertMany", h.get(g.ID), g)
			}
		}
	})

	su.run(t, "UsedKeyTakesItsHoldersPlace", func(h *harness) {
		first := h.insert(key("k"), digest(digest1))
		in := []*tasks.Task{
			h.newTask(key("k"), digest(digest2)),
			h.newTask(),
			h.newTask(key("x")),
			h.newTask(key("x"), data(`{"second":true}`)),
			h.newTask(key("x"), app("app_2")),
		}
		got := h.insertMany(in...)
		for i, want := range []string{first.ID, in[1].ID, in[2].ID, in[2].ID, in[4].ID} {
			if got[i].ID != want {
				h.t.Errorf("InsertMany: task %d is %s, want %s", i, got[i].ID, want)
			}
		}
		h.wantSame("the holder of a used key", got[0], first)
		for _, dup := range []*tasks.Task{in[0], in[3]} {
			_, err := h.s.Get(h.ctx, dup.ID)
			h.wantIs("Get of a task whose key was used", err, tasks.ErrNotFound)
		}
		if all := h.listAll(tasks.ListParams{}); len(all) != 4 {
			h.t.Errorf("List: got %d tasks %v, want 4", len(all), ids(all))
		}
	})

	su.run(t, "TakenIDStoresNothing", func(h *harness) {
		existing := h.insert()
		taken := func(t *tasks.Task) { t.ID = existing.ID }
		for _, in := range [][]*tasks.Task{
			{h.newTask(), h.newTask(key("new")), h.newTask(taken)},
			{h.newTask(), h.newTask(), h.newTask(taken)}, // no keys
		} {
			got, err := h.s.InsertMany(h.ctx, in)
			var ve *tasks.ValidationError
			if !errors.As(err, &ve) || ve.Field != "id" {
				h.t.Fatalf("InsertMany with a taken ID: got %v, %v; want a ValidationError for id", ids(got), err)
			}
			for _, t := range in[:2] {
				_, err := h.s.Get(h.ctx, t.ID)
				h.wantIs("Get of a task of a failed InsertMany", err, tasks.ErrNotFound)
			}
		}
		// The key is free: the failed batch did not take it.
		if again := h.insertMany(h.newTask(key("new"))); again[0].ID == existing.ID {
			h.t.Errorf("InsertMany after a failed one: got %s, want a new task", again[0].ID)
		}
	})

	su.run(t, "None", func(h *harness) {
		got, err := h.s.InsertMany(h.ctx, nil)
		if err != nil || len(got) != 0 {
			h.t.Errorf("InsertMany of no tasks: got %v, %v; want none, nil", ids(got), err)
		}
	})

	su.run(t, "ManyTasks", func(h *harness) {
		const n = 2500 // past SQLite's limit on parameters per statement
		in := make([]*tasks.Task, n)
		for i := range in {
			in[i] = h.newTask(key(fmt.Sprint(i % 2000)))
		}
		got := h.insertMany(in...)
		for i := 2000; i < n; i++ {
			if got[i].ID != in[i-2000].ID {
				h.t.Fatalf("InsertMany: task %d is %s, want the holder of its key %s", i, got[i].ID, in[i-2000].ID)
			}
		}
		if all := h.listAll(tasks.ListParams{Limit: tasks.MaxListLimit}); len(all) != 2000 {
			h.t.Errorf("List: got %d tasks, want 2000", len(all))
		}
	})

	su.run(t, "CanceledStoresNothing", func(h *harness) {
		ctx, cancel := context.WithCancel(h.ctx)
		cancel()
		in := h.newTask()
		if _, err := h.s.InsertMany(ctx, []*tasks.Task{in}); !errors.Is(err, context.Canceled) {
			h.t.Errorf("InsertMany with a canceled context: got error %v, want %v", err, context.Canceled)
		}
		_, err := h.s.Get(h.ctx, in.ID)
		h.wantIs("Get after a canceled InsertMany", err, tasks.ErrNotFound)
	})
}

// insertMany inserts ts with InsertMany and returns what it stored.
func (h *harness) insertMany(ts ...*tasks.Task) []*tasks.Task {
	h.t.Helper()
	got, err := h.s.InsertMany(h.ctx, ts)
	if err != nil {
		h.t.Fatalf("InsertMany: got error %v, want nil", err)
	}
	if len(got) != len(ts) {
		h.t.Fatalf("InsertMany: got %d tasks, want %d", len(got), len(ts))
	}
	h.check(got...)
	return clones(got)
}
