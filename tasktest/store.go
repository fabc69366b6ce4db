package tasktest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskwheel/tasks"
)

// TestStore runs the conformance suite for [tasks.Store]: the contract the
// Store's documentation states, in code. Every store in package tasks passes
// it, and so must any other implementation.
//
// newStore must return a fresh, empty store for the test it is given, and
// release it with t.Cleanup. Every subtest calls it once and runs in
// parallel with the others, so stores must not share tasks (give each its
// own database file or schema). The suite uses only the Store interface. It
// reads the store's clock through Upcoming, so it holds on stores whose clock
// differs from the test process's, and it waits for leases to expire (a few
// milliseconds each) by polling that clock.
//
// Subtests are grouped by method and named for behaviours, such as
// "Finish/StaleAttemptIsNotApplied"; names of the form "F7" refer to the
// acceptance checklist.
func TestStore(t *testing.T, newStore func(t *testing.T) tasks.Store) {
	su := suite{newStore: newStore}
	for _, g := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"Insert", su.testInsert},
		{"InsertMany", su.testInsertMany},
		{"Get", su.testGet},
		{"Claim", su.testClaim},
		{"Finish", su.testFinish},
		{"Extend", su.testExtend},
		{"Rescue", su.testRescue},
		{"Retention", su.testRetention},
		{"Upcoming", su.testUpcoming},
		{"Cancel", su.testCancel},
		{"Reschedule", su.testReschedule},
		{"Replay", su.testReplay},
		{"Delete", su.testDelete},
		{"Bulk", su.testBulk},
		{"Flow", su.testFlow},
		{"PauseLimit", su.testPauseLimit},
		{"FlowMany", su.testFlowMany},
		{"List", su.testList},
		{"Times", su.testTimes},
		{"TraceContext", su.testTraceContext},
		{"Endpoints", su.testEndpoints},
		{"EndpointHealth", su.testEndpointHealth},
		{"EndpointLimits", su.testEndpointLimits},
		{"EndpointPark", su.testEndpointPark},
		{"Attempts", su.testAttempts},
		{"Messages", su.testMessages},
		{"Periodics", su.testPeriodics},
		{"DuePeriodics", su.testDuePeriodics},
		{"AdvancePeriodic", su.testAdvancePeriodic},
		{"Updates", su.testUpdates},
		{"Sessions", su.testSessions},
		{"CountTasks", su.testCountTasks},
		{"TaskHistogram", su.testTaskHistogram},
		{"CountAttempts", su.testCountAttempts},
		{"ListByCreation", su.testListByCreation},
		{"Context", su.testContext},
		{"Optional", su.testOptional},
	} {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t)
		})
	}
}

func (su suite) testInsert(t *testing.T) {
	su.run(t, "ReturnsStoredTask", func(h *harness) {
		in := h.newTask(key("key-1"), digest(digest1), data(`{"email":"a@b.c"}`), func(t *tasks.Task) {
			t.MaxAttempts = 5
			t.Timeout = 1500 * time.Millisecond
		})
		before := h.now()
		got, err := h.s.Insert(h.ctx, in)
		after := h.now()
		if err != nil {
			h.t.Fatalf("Insert: got error %v, want nil", err)
		}
		h.check(got)
		want := &tasks.Task{
			ID:                in.ID,
			AppID:             in.AppID,
			EventType:         in.EventType,
			State:             tasks.StateScheduled,
			CreatedAt:         got.CreatedAt,
			UpdatedAt:         got.CreatedAt,
			Data:              json.RawMessage(`{"email":"a@b.c"}`),
			MaxAttempts:       5,
			NextAttemptAt:     got.NextAttemptAt,
			IdempotencyKey:    "key-1",
			IdempotencyDigest: digest1,
			Timeout:           1500 * time.Millisecond,
		}
		h.wantSame("Insert", got, want)
		h.wantBetween("CreatedAt", &got.CreatedAt, before, after)
		h.wantBetween("NextAttemptAt with no ScheduledRunTime", got.NextAttemptAt, before, after)
	})

	su.run(t, "GetReturnsInsertedTask", func(h *harness) {
		in := h.insert(key("k"), digest(digest1), at(h.now().Add(time.Hour)))
		h.wantSame("Get after Insert", h.get(in.ID), in)
		if in.IdempotencyDigest != digest1 {
			h.t.Errorf("Insert: got IdempotencyDigest %q, want %q", in.IdempotencyDigest, digest1)
		}
	})

	su.run(t, "IgnoresFieldsTheStoreOwns", func(h *harness) {
		old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		in := h.newTask(func(t *tasks.Task) {
			t.State = tasks.StateCompleted
			t.CreatedAt, t.UpdatedAt = old, old
			t.Attempts = 7
			t.ReplayedAfter = 6
			t.LastError = "old error"
			t.CompletedAt = &old
			t.LeaseExpiresAt = &old
			t.NextAttemptAt = ptr(old.AddDate(100, 0, 0))
			t.CancelRequested = true
			t.EndpointID = ptr("ep_1")
		})
		before := h.now()
		got, err := h.s.Insert(h.ctx, in)
		after := h.now()
		if err != nil {
			h.t.Fatalf("Insert: got error %v, want nil", err)
		}
		h.check(got)
		h.wantState(got, tasks.StateScheduled)
		h.wantBetween("CreatedAt", &got.CreatedAt, before, after)
		h.wantBetween("UpdatedAt", &got.UpdatedAt, before, after)
		h.wantBetween("NextAttemptAt", got.NextAttemptAt, before, after)
		if got.Attempts != 0 || got.ReplayedAfter != 0 || got.LastError != "" || got.CompletedAt != nil || got.LeaseExpiresAt != nil || got.CancelRequested || got.EndpointID != nil {
			h.t.Errorf("Insert: got Attempts %d, ReplayedAfter %d, LastError %q, CompletedAt %s, LeaseExpiresAt %s, CancelRequested %v, EndpointID %s; want 0, 0, \"\", nil, nil, false, nil",
				got.Attempts, got.ReplayedAfter, got.LastError, fmtTime(got.CompletedAt), fmtTime(got.LeaseExpiresAt), got.CancelRequested, fmtString(got.EndpointID))
		}
	})

	su.run(t, "FutureRunTimeIsNotDue", func(h *harness) {
		runAt := h.now().Add(time.Hour)
		got := h.insert(at(runAt))
		h.wantState(got, tasks.StateScheduled)
		h.wantTime("ScheduledRunTime", got.ScheduledRunTime, &runAt)
		h.wantTime("NextAttemptAt", got.NextAttemptAt, &runAt)
		h.claimNone()
	})

	su.run(t, "PastRunTimeIsDueNow", func(h *harness) {
		runAt := h.now().Add(-time.Hour)
		before := h.now()
		got := h.insert(at(runAt))
		after := h.now()
		h.wantTime("ScheduledRunTime (as the caller gave it)", got.ScheduledRunTime, &runAt)
		h.wantBetween("NextAttemptAt", got.NextAttemptAt, before, after)
		h.claimOne(got.ID, time.Hour)
	})

	su.run(t, "DataRoundTrips", func(h *harness) {
		var large strings.Builder
		large.WriteString(`{"items":[`)
		for i := range 4000 {
			if i > 0 {
				large.WriteString(",")
			}
			fmt.Fprintf(&large, `{"i":%d,"s":"item %d é 😀 \"q\"","f":%d.5e-3}`, i, i, i)
		}
		large.WriteString("]}")
		payloads := []struct{ name, data string }{
			{"Object", `{"email":"a@b.c"}`},
			{"KeyOrder", `{"z":1,"a":2,"m":{"y":true,"b":null}}`},
			{"Whitespace", " {\n\t\"a\" :  [ 1 , 2 ] ,\r\n  \"b\":{ }\n} \n"},
			{"DuplicateKeys", `{"a":1,"a":2}`},
			{"Unicode", `{"s":"Zoë — 日本語 🎉 \u00e9"}`},
			{"Escapes", `{"s":"\u00e9\n\t\"q\" \\ \/ \u2028 \ud83c\udf89 \u0000"}`},
			{"Numbers", `[1.0, 1e3, -0, 12345678901234567890123, 0.1000, 1E-7]`},
			{"Null", `null`},
			{"String", `"just a string"`},
			{"EmptyObject", `{}`},
			{"Large", large.String()},
		}
		byID := make(map[string]string)
		for _, p := range payloads {
			got := h.insert(data(p.data))
			byID[got.ID] = p.name
			if !bytes.Equal(got.Data, []byte(p.data)) {
				h.t.Errorf("%s: Insert returned Data %s, want %s", p.name, fmtData(got.Data), fmtData([]byte(p.data)))
			}
			if g := h.get(got.ID); !bytes.Equal(g.Data, []byte(p.data)) {
				h.t.Errorf("%s: Get returned Data %s, want %s", p.name, fmtData(g.Data), fmtData([]byte(p.data)))
			}
		}
		want := func(id string) []byte {
			for _, p := range payloads {
				if p.name == byID[id] {
					return []byte(p.data)
				}
			}
			return nil
		}
		listed := h.listAll(tasks.ListParams{})
		if len(listed) != len(payloads) {
			h.t.Errorf("List: got %d tasks, want %d", len(listed), len(payloads))
		}
		for _, g := range listed {
			if !bytes.Equal(g.Data, want(g.ID)) {
				h.t.Errorf("%s: List returned Data %s, want %s", byID[g.ID], fmtData(g.Data), fmtData(want(g.ID)))
			}
		}
		claimed := h.claim(len(payloads), time.Hour)
		if len(claimed) != len(payloads) {
			h.t.Errorf("Claim: got %d tasks, want %d", len(claimed), len(payloads))
		}
		for _, g := range claimed {
			if !bytes.Equal(g.Data, want(g.ID)) {
				h.t.Errorf("%s: Claim returned Data %s, want %s", byID[g.ID], fmtData(g.Data), fmtData(want(g.ID)))
			}
		}
	})

	su.run(t, "DoesNotRetainItsArgument", func(h *harness) {
		runAt := h.now().Add(time.Hour)
		in := h.newTask(at(runAt))
		got, err := h.s.Insert(h.ctx, in)
		if err != nil {
			h.t.Fatalf("Insert: got error %v, want nil", err)
		}
		want := clone(got)
		in.Data[0] = 'X'
		*in.ScheduledRunTime = runAt.Add(24 * time.Hour)
		in.AppID = "changed"
		h.wantSame("Get after changing Insert's argument", h.get(got.ID), want)
	})

	su.run(t, "DuplicateKeyReturnsExistingTask", func(h *harness) {
		first := h.insert(key("order-42"), digest(digest1))
		dup := h.newTask(key("order-42"), digest(digest2), event("other.event"), data(`{"other":true}`))
		got, err := h.s.Insert(h.ctx, dup)
		h.wantIs("Insert with a used key", err, tasks.ErrDuplicate)
		if got == nil {
			h.t.Fatalf("Insert with a used key: got nil task, want the existing task %s", first.ID)
		}
		h.wantSame("task returned with ErrDuplicate", got, first)
		_, err = h.s.Get(h.ctx, dup.ID)
		h.wantIs("Get of the duplicate's ID", err, tasks.ErrNotFound)
		if all := h.listAll(tasks.ListParams{}); len(all) != 1 {
			h.t.Errorf("List: got %d tasks %v, want 1", len(all), ids(all))
		}
	})

	su.run(t, "DuplicateKeyAfterTaskEnded", func(h *harness) {
		first := h.completed(key("once"))
		got, err := h.s.Insert(h.ctx, h.newTask(key("once")))
		h.wantIs("Insert with the key of a completed task", err, tasks.ErrDuplicate)
		if got == nil || got.ID != first.ID || got.State != tasks.StateCompleted {
			h.t.Errorf("Insert with the key of a completed task: got %v, want completed task %s", got, first.ID)
		}
	})

	su.run(t, "SameKeyInAnotherApp", func(h *harness) {
		a := h.insert(app("app_a"), key("k"))
		b := h.insert(app("app_b"), key("k"))
		if a.ID == b.ID {
			h.t.Fatalf("got the same task %s for two apps, want two tasks", a.ID)
		}
		h.get(a.ID)
		h.get(b.ID)
	})

	su.run(t, "EmptyKeyNeverConflicts", func(h *harness) {
		for range 3 {
			h.insert(key(""))
		}
		if all := h.listAll(tasks.ListParams{}); len(all) != 3 {
			h.t.Errorf("List: got %d tasks, want 3", len(all))
		}
	})

	// F23: the same idempotency key created concurrently.
	su.run(t, "ConcurrentSameKeyStoresOneTask", func(h *harness) {
		const n = 20
		type result struct {
			in, got *tasks.Task
			err     error
		}
		results := make([]result, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			results[i].in = h.newTask(key("same"))
			wg.Go(func() {
				<-start
				results[i].got, results[i].err = h.s.Insert(h.ctx, results[i].in)
			})
		}
		close(start)
		h.wait(&wg)
		var winner string
		for _, r := range results {
			if r.err == nil {
				if winner != "" {
					h.t.Errorf("Insert succeeded for %s and %s, want one success", winner, r.in.ID)
				}
				winner = r.in.ID
			} else if !errors.Is(r.err, tasks.ErrDuplicate) {
				h.t.Errorf("Insert: got error %v, want nil or %v", r.err, tasks.ErrDuplicate)
			}
		}
		if winner == "" {
			h.t.Fatalf("Insert: got no success among %d, want one", n)
		}
		for _, r := range results {
			if r.got == nil || r.got.ID != winner {
				h.t.Errorf("Insert by %s: got task %v, want %s", r.in.ID, r.got, winner)
			}
		}
		if all := h.listAll(tasks.ListParams{}); len(all) != 1 {
			h.t.Errorf("List: got %d tasks, want 1", len(all))
		}
	})
}

func (su suite) testGet(t *testing.T) {
	su.run(t, "UnknownIDIsNotFound", func(h *harness) {
		h.insert()
		got, err := h.s.Get(h.ctx, uuid.NewString())
		h.wantIs("Get of an unknown ID", err, tasks.ErrNotFound)
		if got != nil {
			h.t.Errorf("Get of an unknown ID: got %v, want nil", got)
		}
	})

	su.run(t, "MalformedIDIsNotFound", func(h *harness) {
		for _, id := range []string{"", "not-a-uuid", "'; DROP TABLE tasks; --", strings.Repeat("x", 300)} {
			_, err := h.s.Get(h.ctx, id)
			h.wantIs(fmt.Sprintf("Get(%.20q)", id), err, tasks.ErrNotFound)
		}
	})

	su.run(t, "ByIdempotencyKey", func(h *harness) {
		keyed := h.insert(func(t *tasks.Task) { t.IdempotencyKey = "key-1" })
		h.insert(func(t *tasks.Task) { t.AppID, t.IdempotencyKey = "app_2", "key-1" })
		h.insert()
		got, err := h.s.GetByIdempotencyKey(h.ctx, "app_1", "key-1")
		if err != nil {
			h.t.Fatalf("GetByIdempotencyKey: got error %v, want nil", err)
		}
		h.wantSame("GetByIdempotencyKey", got, keyed)
		got.Data[0] = 'X'
		h.wantSame("Get after changing the task GetByIdempotencyKey returned", h.get(keyed.ID), keyed)
		for _, k := range []struct{ app, key string }{
			{"app_1", "key-2"}, {"app_3", "key-1"}, {"app_1", ""}, {"", "key-1"}, {"app_1", "KEY-1"},
			{"app_1", "'; DROP TABLE tasks; --"}, {"app_1", strings.Repeat("k", 300)},
		} {
			got, err := h.s.GetByIdempotencyKey(h.ctx, k.app, k.key)
			h.wantIs(fmt.Sprintf("GetByIdempotencyKey(%q, %.20q)", k.app, k.key), err, tasks.ErrNotFound)
			if got != nil {
				h.t.Errorf("GetByIdempotencyKey(%q, %.20q): got %v, want nil", k.app, k.key, got)
			}
		}
	})

	su.run(t, "ReturnsACopy", func(h *harness) {
		in, err := h.s.Insert(h.ctx, h.newTask(at(h.now().Add(time.Hour))))
		if err != nil {
			h.t.Fatalf("Insert: got error %v, want nil", err)
		}
		want := clone(in)
		got, err := h.s.Get(h.ctx, in.ID)
		if err != nil {
			h.t.Fatalf("Get: got error %v, want nil", err)
		}
		for _, tk := range []*tasks.Task{in, got} {
			tk.Data[0] = 'X'
			*tk.ScheduledRunTime = tk.ScheduledRunTime.Add(24 * time.Hour)
			*tk.NextAttemptAt = tk.NextAttemptAt.Add(24 * time.Hour)
			tk.State = tasks.StateFailed
		}
		h.wantSame("Get after changing the tasks Insert and Get returned", h.get(in.ID), want)

		h.insert()
		claimed, err := h.s.Claim(h.ctx, 1, time.Hour)
		if err != nil || len(claimed) != 1 {
			h.t.Fatalf("Claim: got %d tasks, error %v; want 1, nil", len(claimed), err)
		}
		want = clone(claimed[0])
		*claimed[0].LeaseExpiresAt = claimed[0].LeaseExpiresAt.Add(-24 * time.Hour)
		h.wantSame("Get after changing a claimed task", h.get(want.ID), want)
	})
}

func (su suite) testTimes(t *testing.T) {
	zone := time.FixedZone("IST", 5*3600+1800)

	su.run(t, "InsertStoresUTCToTheMicrosecond", func(h *harness) {
		runAt := h.now().Add(time.Hour).Add(123 * time.Nanosecond).In(zone)
		got := h.insert(at(runAt)) // checks UTC and microseconds
		for name, p := range map[string]*time.Time{"ScheduledRunTime": got.ScheduledRunTime, "NextAttemptAt": got.NextAttemptAt} {
			if p == nil || p.Sub(runAt).Abs() > time.Microsecond {
				h.t.Errorf("%s: got %s, want %v to the microsecond", name, fmtTime(p), runAt.UTC())
			}
		}
		h.get(got.ID)
		_, due := h.upcoming(2*time.Hour, 10)
		if len(due) != 1 || due[0].RunAt.Sub(runAt).Abs() > time.Microsecond {
			h.t.Errorf("Upcoming: got %v, want [%s at %v]", due, got.ID, runAt.UTC())
		}
	})

	su.run(t, "RescheduleStoresUTCToTheMicrosecond", func(h *harness) {
		tk := h.insert()
		runAt := h.now().Add(time.Hour).Add(456 * time.Nanosecond).In(zone)
		got, err := h.s.Reschedule(h.ctx, tk.ID, runAt)
		if err != nil {
			h.t.Fatalf("Reschedule: got error %v, want nil", err)
		}
		h.check(got)
		if got.NextAttemptAt == nil || got.NextAttemptAt.Sub(runAt).Abs() > time.Microsecond {
			h.t.Errorf("NextAttemptAt: got %s, want %v to the microsecond", fmtTime(got.NextAttemptAt), runAt.UTC())
		}
		h.get(tk.ID)
	})

	su.run(t, "EveryStateIsUTC", func(h *harness) {
		// inState and every harness call check each returned task.
		for _, s := range []tasks.State{tasks.StateScheduled, tasks.StateRunning, tasks.StateRetrying, tasks.StateCompleted, tasks.StateFailed, tasks.StateCanceled} {
			h.inState(s)
		}
		h.listAll(tasks.ListParams{})
		h.upcoming(time.Hour, 100)
	})
}

func (su suite) testContext(t *testing.T) {
	su.run(t, "CanceledInsertStoresNothing", func(h *harness) {
		ctx, cancel := context.WithCancel(h.ctx)
		cancel()
		in := h.newTask()
		if _, err := h.s.Insert(ctx, in); !errors.Is(err, context.Canceled) {
			h.t.Errorf("Insert with a canceled context: got error %v, want %v", err, context.Canceled)
		}
		_, err := h.s.Get(h.ctx, in.ID)
		h.wantIs("Get after a canceled Insert", err, tasks.ErrNotFound)
	})

	su.run(t, "CanceledClaimClaimsNothing", func(h *harness) {
		tk := h.insert()
		ctx, cancel := context.WithCancel(h.ctx)
		cancel()
		if got, err := h.s.Claim(ctx, 10, time.Hour); !errors.Is(err, context.Canceled) || len(got) != 0 {
			h.t.Errorf("Claim with a canceled context: got %v, %v; want no task, %v", ids(got), err, context.Canceled)
		}
		h.wantState(h.get(tk.ID), tasks.StateScheduled)
		h.claimOne(tk.ID, time.Hour)
	})
}
