package tasktest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskwheel/tasks"
)

func (su suite) testCancel(t *testing.T) {
	su.run(t, "Scheduled", func(h *harness) {
		tk := h.insert()
		before := h.now()
		got := h.cancel(tk.ID)
		after := h.now()
		h.wantState(got, tasks.StateCanceled)
		h.wantBetween("CompletedAt", got.CompletedAt, before, after)
		h.wantTime("NextAttemptAt", got.NextAttemptAt, nil)
		h.wantSame("Get after Cancel", h.get(tk.ID), got)
		h.claimNone()
		if _, due := h.upcoming(time.Hour, 10); len(due) != 0 {
			h.t.Errorf("Upcoming: got %v, want none", dueIDs(due))
		}
	})

	su.run(t, "Retrying", func(h *harness) {
		tk := h.retrying(0) // due at once: only Cancel keeps it from being claimed
		got := h.cancel(tk.ID)
		h.wantState(got, tasks.StateCanceled)
		if got.Attempts != 1 || got.LastError != "boom" {
			h.t.Errorf("got Attempts %d, LastError %q; want 1, \"boom\"", got.Attempts, got.LastError)
		}
		h.claimNone()
	})

	su.run(t, "RunningRequestsCancellation", func(h *harness) {
		tk := h.running(time.Hour)
		got := h.cancel(tk.ID)
		h.wantState(got, tasks.StateRunning)
		if !got.CancelRequested || got.Attempts != 1 {
			h.t.Errorf("got CancelRequested %v, Attempts %d; want true, 1", got.CancelRequested, got.Attempts)
		}
		h.wantTime("LeaseExpiresAt", got.LeaseExpiresAt, tk.LeaseExpiresAt)
		h.wantSame("Get after Cancel", h.get(tk.ID), got)
		again := h.cancel(tk.ID)
		h.wantState(again, tasks.StateRunning)
		if !again.CancelRequested {
			h.t.Errorf("second Cancel: got CancelRequested false, want true")
		}
	})

	su.run(t, "CanceledIsUnchanged", func(h *harness) {
		tk := h.canceled()
		got := h.cancel(tk.ID)
		h.wantSame("second Cancel", got, tk)
		h.wantSame("Get after second Cancel", h.get(tk.ID), tk)
	})

	for _, s := range []tasks.State{tasks.StateCompleted, tasks.StateFailed} {
		su.run(t, title(s)+"IsInvalidState", func(h *harness) {
			tk := h.inState(s)
			got, err := h.s.Cancel(h.ctx, tk.ID)
			h.wantIs("Cancel of a "+string(s)+" task", err, tasks.ErrInvalidState)
			if got == nil {
				h.t.Errorf("Cancel of a %s task: got nil task, want the task", s)
			} else {
				h.wantSame("task returned with ErrInvalidState", got, tk)
			}
			h.wantSame("Get after Cancel", h.get(tk.ID), tk)
		})
	}

	su.run(t, "UnknownIsNotFound", func(h *harness) {
		_, err := h.s.Cancel(h.ctx, uuid.NewString())
		h.wantIs("Cancel of an unknown task", err, tasks.ErrNotFound)
	})

	// F21: a cancel racing a claim either wins (canceled, never claimed) or
	// loses (claimed, running with its cancellation requested).
	su.run(t, "F21_RacingClaim", func(h *harness) {
		const iterations = 50
		outcomes := make(map[string]int)
		for i := range iterations {
			tk := h.insert()
			var claimed []*tasks.Task
			var claimErr, cancelErr error
			var canceled *tasks.Task
			start := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				<-start
				claimed, claimErr = h.s.Claim(h.ctx, 1, time.Hour)
			})
			wg.Go(func() {
				<-start
				canceled, cancelErr = h.s.Cancel(h.ctx, tk.ID)
			})
			close(start)
			h.wait(&wg)
			if claimErr != nil || cancelErr != nil {
				h.t.Fatalf("iteration %d: Claim error %v, Cancel error %v; want nil", i, claimErr, cancelErr)
			}
			got := h.get(tk.ID)
			switch {
			case len(claimed) == 1 && claimed[0].ID == tk.ID:
				outcomes["claimed first"]++
				if got.State != tasks.StateRunning || !got.CancelRequested || !canceled.CancelRequested {
					h.t.Errorf("iteration %d, claimed: got State %s, CancelRequested %v (Cancel returned %v); want running, true",
						i, got.State, got.CancelRequested, canceled.CancelRequested)
				}
			case len(claimed) == 0:
				outcomes["canceled first"]++
				if got.State != tasks.StateCanceled || got.Attempts != 0 || canceled.State != tasks.StateCanceled {
					h.t.Errorf("iteration %d, not claimed: got State %s, Attempts %d (Cancel returned %s); want canceled, 0",
						i, got.State, got.Attempts, canceled.State)
				}
			default:
				h.t.Fatalf("iteration %d: Claim got %v, want [%s] or none", i, ids(claimed), tk.ID)
			}
		}
		h.t.Logf("outcomes of %d races: %v", iterations, outcomes)
	})
}

func (su suite) testReschedule(t *testing.T) {
	su.run(t, "ScheduledToLater", func(h *harness) {
		tk := h.insert()
		runAt := h.now().Add(time.Hour)
		got, err := h.s.Reschedule(h.ctx, tk.ID, runAt)
		if err != nil {
			h.t.Fatalf("Reschedule: got error %v, want nil", err)
		}
		h.check(got)
		h.wantState(got, tasks.StateScheduled)
		h.wantTime("ScheduledRunTime", got.ScheduledRunTime, &runAt)
		h.wantTime("NextAttemptAt", got.NextAttemptAt, &runAt)
		h.wantSame("Get after Reschedule", h.get(tk.ID), got)
		h.claimNone()
		if _, due := h.upcoming(2*time.Hour, 10); len(due) != 1 || due[0].ID != tk.ID || !due[0].RunAt.Equal(runAt) {
			h.t.Errorf("Upcoming: got %v, want [%s at %v]", due, tk.ID, runAt)
		}
	})

	su.run(t, "KeepsTheIdempotencyDigest", func(h *harness) {
		// The digest is of the request that created the task: a PATCH
		// that moves the task changes its run time, not the request.
		tk := h.insert(key("k"), digest(digest1), at(h.now().Add(time.Hour)))
		got, err := h.s.Reschedule(h.ctx, tk.ID, h.now().Add(2*time.Hour))
		if err != nil {
			h.t.Fatalf("Reschedule: got error %v, want nil", err)
		}
		h.check(got)
		if got.IdempotencyDigest != digest1 {
			h.t.Errorf("Reschedule: got IdempotencyDigest %q, want %q", got.IdempotencyDigest, digest1)
		}
		h.wantSame("Get after Reschedule", h.get(tk.ID), got)
	})

	su.run(t, "PastTimeIsDueNow", func(h *harness) {
		tk := h.insert(at(h.now().Add(time.Hour)))
		before := h.now()
		got, err := h.s.Reschedule(h.ctx, tk.ID, before.Add(-time.Hour))
		after := h.now()
		if err != nil {
			h.t.Fatalf("Reschedule: got error %v, want nil", err)
		}
		h.check(got)
		h.wantState(got, tasks.StateScheduled)
		h.wantBetween("NextAttemptAt", got.NextAttemptAt, before, after)
		h.claimOne(tk.ID, time.Hour)
	})

	su.run(t, "RetryingBecomesScheduled", func(h *harness) {
		tk := h.retrying(time.Hour)
		runAt := h.now().Add(2 * time.Hour)
		got, err := h.s.Reschedule(h.ctx, tk.ID, runAt)
		if err != nil {
			h.t.Fatalf("Reschedule: got error %v, want nil", err)
		}
		h.check(got)
		h.wantState(got, tasks.StateScheduled)
		h.wantTime("NextAttemptAt", got.NextAttemptAt, &runAt)
		if got.Attempts != 1 {
			h.t.Errorf("Attempts: got %d, want 1", got.Attempts)
		}
	})

	for _, s := range []tasks.State{tasks.StateRunning, tasks.StateCompleted, tasks.StateFailed, tasks.StateCanceled} {
		su.run(t, title(s)+"IsInvalidState", func(h *harness) {
			tk := h.inState(s)
			_, err := h.s.Reschedule(h.ctx, tk.ID, h.now().Add(time.Hour))
			h.wantIs("Reschedule of a "+string(s)+" task", err, tasks.ErrInvalidState)
			h.wantSame("Get after Reschedule", h.get(tk.ID), tk)
		})
	}

	su.run(t, "UnknownIsNotFound", func(h *harness) {
		_, err := h.s.Reschedule(h.ctx, uuid.NewString(), time.Now())
		h.wantIs("Reschedule of an unknown task", err, tasks.ErrNotFound)
	})
}

func (su suite) testReplay(t *testing.T) {
	su.run(t, "CompletedRunsAgain", func(h *harness) {
		tk := h.completed()
		before := h.now()
		got, err := h.s.Replay(h.ctx, tk.ID, 2)
		after := h.now()
		if err != nil {
			h.t.Fatalf("Replay: got error %v, want nil", err)
		}
		h.check(got)
		h.wantState(got, tasks.StateScheduled)
		if got.ID != tk.ID || got.Attempts != 1 || got.MaxAttempts != 3 || got.ReplayedAfter != 1 {
			h.t.Errorf("got ID %s, Attempts %d, MaxAttempts %d, ReplayedAfter %d; want %s, 1, 3, 1",
				got.ID, got.Attempts, got.MaxAttempts, got.ReplayedAfter, tk.ID)
		}
		h.wantBetween("NextAttemptAt", got.NextAttemptAt, before, after)
		h.wantSame("Get after Replay", h.get(tk.ID), got)
		if again := h.claimOne(tk.ID, time.Hour); again.Attempts != 2 {
			h.t.Errorf("claim after Replay: got Attempts %d, want 2", again.Attempts)
		}
	})

	su.run(t, "KeepsTheIdempotencyDigest", func(h *harness) {
		tk := h.completed(key("k"), digest(digest1))
		got, err := h.s.Replay(h.ctx, tk.ID, 1)
		if err != nil {
			h.t.Fatalf("Replay: got error %v, want nil", err)
		}
		h.check(got)
		if got.IdempotencyDigest != digest1 {
			h.t.Errorf("Replay: got IdempotencyDigest %q, want %q", got.IdempotencyDigest, digest1)
		}
		h.wantSame("Get after Replay", h.get(tk.ID), got)
	})

	su.run(t, "FailedKeepsItsHistory", func(h *harness) {
		tk := h.failed()
		got, err := h.s.Replay(h.ctx, tk.ID, 1)
		if err != nil {
			h.t.Fatalf("Replay: got error %v, want nil", err)
		}
		h.check(got)
		h.wantState(got, tasks.StateScheduled)
		if got.Attempts != 1 || got.MaxAttempts != 2 || got.LastError != "boom" || !got.CreatedAt.Equal(tk.CreatedAt) {
			h.t.Errorf("got Attempts %d, MaxAttempts %d, LastError %q, CreatedAt %v; want 1, 2, \"boom\", %v",
				got.Attempts, got.MaxAttempts, got.LastError, got.CreatedAt, tk.CreatedAt)
		}
	})

	su.run(t, "ExtraBoundsTheNewAttempts", func(h *harness) {
		tk := h.failed()
		if _, err := h.s.Replay(h.ctx, tk.ID, 1); err != nil {
			h.t.Fatalf("Replay: got error %v, want nil", err)
		}
		again := h.claimOne(tk.ID, time.Millisecond)
		h.waitExpired(again)
		if n := h.rescue(10); n != 1 {
			h.t.Fatalf("Rescue: got %d, want 1", n)
		}
		h.wantState(h.get(tk.ID), tasks.StateFailed) // its one extra attempt is used up
	})

	su.run(t, "CanceledBeforeItRan", func(h *harness) {
		tk := h.canceled()
		got, err := h.s.Replay(h.ctx, tk.ID, 1)
		if err != nil {
			h.t.Fatalf("Replay: got error %v, want nil", err)
		}
		if got.Attempts != 0 || got.MaxAttempts != 1 || got.ReplayedAfter != 0 {
			h.t.Errorf("got Attempts %d, MaxAttempts %d, ReplayedAfter %d; want 0, 1, 0", got.Attempts, got.MaxAttempts, got.ReplayedAfter)
		}
		if again := h.claimOne(tk.ID, time.Hour); again.Attempts != 1 {
			h.t.Errorf("claim after Replay: got Attempts %d, want 1", again.Attempts)
		}
	})

	// ReplayedAfter tells a run's attempts from those of earlier runs: the
	// run's own attempts leave it alone, each replay moves it on.
	su.run(t, "ReplayedAfterMarksEachRun", func(h *harness) {
		tk := h.failed()
		got, err := h.s.Replay(h.ctx, tk.ID, 5)
		if err != nil {
			h.t.Fatalf("Replay: got error %v, want nil", err)
		}
		if got.ReplayedAfter != 1 {
			h.t.Errorf("Replay: got ReplayedAfter %d, want 1", got.ReplayedAfter)
		}
		second := h.claimOne(tk.ID, time.Hour)
		h.finishOne(second, tasks.StateRetrying, 0, "boom")
		third := h.claimOne(tk.ID, time.Hour)
		if second.ReplayedAfter != 1 || third.ReplayedAfter != 1 {
			h.t.Errorf("claims of the run: got ReplayedAfter %d and %d, want 1 and 1", second.ReplayedAfter, third.ReplayedAfter)
		}
		h.finishOne(third, tasks.StateCompleted, 0, "")
		if done := h.get(tk.ID); done.ReplayedAfter != 1 || done.Attempts != 3 {
			h.t.Errorf("completed: got ReplayedAfter %d, Attempts %d; want 1, 3", done.ReplayedAfter, done.Attempts)
		}
		if got, err = h.s.Replay(h.ctx, tk.ID, 1); err != nil {
			h.t.Fatalf("Replay: got error %v, want nil", err)
		}
		if got.ReplayedAfter != 3 {
			h.t.Errorf("second Replay: got ReplayedAfter %d, want 3", got.ReplayedAfter)
		}
		h.wantSame("Get after Replay", h.get(tk.ID), got)
	})

	// A replayed task runs afresh: the cancellation requested during an
	// earlier run does not revoke the new one.
	su.run(t, "ClearsCancelRequested", func(h *harness) {
		tk := h.running(time.Hour)
		h.cancel(tk.ID)
		h.finishOne(tk, tasks.StateRetrying, 0, "context canceled")
		if _, err := h.s.Replay(h.ctx, tk.ID, 1); err != nil {
			h.t.Fatalf("Replay: got error %v, want nil", err)
		}
		again := h.claimOne(tk.ID, time.Hour)
		if again.CancelRequested {
			h.t.Errorf("claim after Replay: got CancelRequested true, want false")
		}
		if revoked := h.extend(time.Hour, tasks.Lease{ID: tk.ID, Attempt: again.Attempts}); len(revoked) != 0 {
			h.t.Errorf("Extend after Replay: got revoked %v, want none", revoked)
		}
	})

	for _, s := range []tasks.State{tasks.StateScheduled, tasks.StateRunning, tasks.StateRetrying} {
		su.run(t, title(s)+"IsInvalidState", func(h *harness) {
			tk := h.inState(s)
			_, err := h.s.Replay(h.ctx, tk.ID, 1)
			h.wantIs("Replay of a "+string(s)+" task", err, tasks.ErrInvalidState)
			h.wantSame("Get after Replay", h.get(tk.ID), tk)
		})
	}

	su.run(t, "UnknownIsNotFound", func(h *harness) {
		_, err := h.s.Replay(h.ctx, uuid.NewString(), 1)
		h.wantIs("Replay of an unknown task", err, tasks.ErrNotFound)
	})
}

func (su suite) testList(t *testing.T) {
	su.run(t, "EmptyStore", func(h *harness) {
		got, cursor := h.list(tasks.ListParams{})
		if len(got) != 0 || cursor != "" {
			h.t.Errorf("List: got %v, cursor %q; want none, \"\"", ids(got), cursor)
		}
	})

	su.run(t, "NewestFirst", func(h *harness) {
		var all []*tasks.Task
		for range 6 {
			all = append(all, h.insert())
		}
		got, cursor := h.list(tasks.ListParams{})
		if want := ids(newestFirst(all)); !slices.Equal(ids(got), want) || cursor != "" {
			h.t.Errorf("List: got %v, cursor %q; want %v, \"\"", ids(got), cursor, want)
		}
	})

	su.run(t, "Filters", func(h *harness) {
		// Tasks of two apps and two event types, in several states.
		for _, a := range []string{"app_a", "app_b"} {
			for _, e := range []string{"e.one", "e.two"} {
				h.running(time.Hour, app(a), event(e))
				h.insert(app(a), event(e), at(h.now().Add(time.Hour)))
				h.completed(app(a), event(e))
				h.canceled(app(a), event(e))
			}
		}
		all := newestFirst(h.listAll(tasks.ListParams{Limit: tasks.MaxListLimit}))
		if len(all) != 16 {
			h.t.Fatalf("List: got %d tasks, want 16", len(all))
		}
		for _, tc := range []struct {
			p    tasks.ListParams
			keep func(*tasks.Task) bool
		}{
			{tasks.ListParams{AppID: "app_a"}, func(t *tasks.Task) bool { return t.AppID == "app_a" }},
			{tasks.ListParams{AppID: "app_none"}, func(t *tasks.Task) bool { return false }},
			{tasks.ListParams{EventType: "e.two"}, func(t *tasks.Task) bool { return t.EventType == "e.two" }},
			{tasks.ListParams{States: []tasks.State{tasks.StateRunning}}, func(t *tasks.Task) bool { return t.State == tasks.StateRunning }},
			{tasks.ListParams{States: []tasks.State{tasks.StateScheduled, tasks.StateCanceled}}, func(t *tasks.Task) bool {
				return t.State == tasks.StateScheduled || t.State == tasks.StateCanceled
			}},
			{tasks.ListParams{States: []tasks.State{tasks.StateFailed}}, func(t *tasks.Task) bool { return false }},
			{tasks.ListParams{AppID: "app_b", EventType: "e.one", States: []tasks.State{tasks.StateCompleted, tasks.StateRunning}}, func(t *tasks.Task) bool {
				return t.AppID == "app_b" && t.EventType == "e.one" && (t.State == tasks.StateCompleted || t.State == tasks.StateRunning)
			}},
			// One state of one app, which a SQL store reads on the index
			// of that state's tasks.
			{tasks.ListParams{AppID: "app_a", States: []tasks.State{tasks.StateCompleted}}, func(t *tasks.Task) bool {
				return t.AppID == "app_a" && t.State == tasks.StateCompleted
			}},
			{tasks.ListParams{AppID: "app_b", EventType: "e.two", States: []tasks.State{tasks.StateScheduled}}, func(t *tasks.Task) bool {
				return t.AppID == "app_b" && t.EventType == "e.two" && t.State == tasks.StateScheduled
			}},
			{tasks.ListParams{AppID: "app_a", States: []tasks.State{tasks.StateFailed}}, func(t *tasks.Task) bool { return false }},
			{tasks.ListParams{AppID: "app_b", States: []tasks.State{tasks.StateRunning}}, func(t *tasks.Task) bool {
				return t.AppID == "app_b" && t.State == tasks.StateRunning
			}},
			{tasks.ListParams{AppID: "app_a", EventType: "e.one", States: []tasks.State{tasks.StateCanceled}}, func(t *tasks.Task) bool {
				return t.AppID == "app_a" && t.EventType == "e.one" && t.State == tasks.StateCanceled
			}},
		} {
			var want []string
			for _, tk := range all {
				if tc.keep(tk) {
					want = append(want, tk.ID)
				}
			}
			got, cursor := h.list(tc.p)
			if !slices.Equal(ids(got), want) || cursor != "" {
				h.t.Errorf("List(%+v): got %v, cursor %q; want %v, \"\"", tc.p, ids(got), cursor, want)
			}
			tc.p.Limit = 1
			if paged := h.listAll(tc.p); !slices.Equal(ids(paged), want) {
				h.t.Errorf("List(%+v) page by page: got %v, want %v", tc.p, ids(paged), want)
			}
		}
	})

	su.run(t, "PagesCoverEveryTaskOnce", func(h *harness) {
		var p1, p2 []*tasks.Task
		for range 23 {
			p1 = append(p1, h.insert(app("p1")))
		}
		for range 20 {
			p2 = append(p2, h.insert(app("p2")))
		}
		for _, tc := range []struct {
			app   string
			limit int
			want  []*tasks.Task
		}{
			{"p1", 5, p1},  // last page short
			{"p2", 5, p2},  // last page full
			{"p1", 23, p1}, // one full page
			{"p2", 1, p2},
		} {
			want := ids(newestFirst(tc.want))
			p := tasks.ListParams{AppID: tc.app, Limit: tc.limit}
			var got []string
			for page := 0; ; page++ {
				if page > len(want) {
					h.t.Fatalf("List(%+v): still paging after %d pages", p, page)
				}
				ts, cursor := h.list(p)
				if len(ts) > tc.limit || cursor != "" && len(ts) != tc.limit {
					h.t.Errorf("List(%+v): got %d tasks and cursor %q, want a full page of %d before a cursor", p, len(ts), cursor, tc.limit)
				}
				got = append(got, ids(ts)...)
				if cursor == "" {
					break
				}
				p.Cursor = cursor
			}
			if !slices.Equal(got, want) {
				h.t.Errorf("List app %s by %d: got %v, want %v", tc.app, tc.limit, got, want)
			}
		}
	})

	su.run(t, "PagingIgnoresNewerTasks", func(h *harness) {
		var old []*tasks.Task
		for range 6 {
			old = append(old, h.insert())
		}
		want := ids(newestFirst(old))
		first, cursor := h.list(tasks.ListParams{Limit: 3})
		if cursor == "" {
			h.t.Fatalf("List: got no cursor after 3 of 6 tasks, want one")
		}
		h.insert()
		rest := h.listAll(tasks.ListParams{Limit: 3, Cursor: cursor})
		if got := append(ids(first), ids(rest)...); !slices.Equal(got, want) {
			h.t.Errorf("List with a task inserted between pages: got %v, want %v", got, want)
		}
	})

	su.run(t, "MaxBytes", func(h *harness) {
		// Tasks of 20 to 1,000 bytes of data and last error, in no order;
		// every other one has half of its bytes in its last error. (The
		// others are not due, so that the claims take the failing ones.)
		var all []*tasks.Task
		for i, n := range []int{100, 300, 20, 500, 200, 1000, 60, 400, 250} {
			if i%2 == 0 {
				all = append(all, h.insert(at(h.now().Add(time.Hour)), data(`"`+strings.Repeat("d", n-2)+`"`)))
			} else {
				all = append(all, h.ended(tasks.StateFailed, 0, strings.Repeat("e", n/2), data(`"`+strings.Repeat("d", n-n/2-2)+`"`)))
			}
		}
		all = newestFirst(all)
		size := func(t *tasks.Task) int64 { return int64(len(t.Data) + len(t.LastError)) }
		for _, limit := range []int{3, tasks.MaxListLimit} {
			for _, maxBytes := range []int64{1, 250, 600, 1000, 1300, 5000, 0} {
				p := tasks.ListParams{Limit: limit, MaxBytes: maxBytes}
				list := fmt.Sprintf("List with Limit %d, MaxBytes %d", limit, maxBytes)
				rest := all // the tasks that the next pages must list, in order
				for page := 1; ; page++ {
					got, cursor := h.list(p)
					var bytes int64
					for _, t := range got {
						bytes += size(t)
					}
					switch {
					case len(got) == 0 || len(got) > len(rest) || !slices.Equal(ids(got), ids(rest[:len(got)])):
						h.t.Fatalf("%s, page %d: got %v, want a first part of %v", list, page, ids(got), ids(rest))
					case len(got) > limit:
						h.t.Fatalf("%s, page %d: got %d tasks, more than the limit", list, page, len(got))
					case maxBytes > 0 && len(got) > 1 && bytes > maxBytes:
						h.t.Errorf("%s, page %d: got %d tasks of %d bytes, more than MaxBytes", list, page, len(got), bytes)
					case (cursor == "") != (len(got) == len(rest)):
						h.t.Fatalf("%s, page %d: got %d of %d tasks left and cursor %q", list, page, len(got), len(rest), cursor)
					case cursor != "" && len(got) < limit && bytes+size(rest[len(got)]) <= maxBytes:
						h.t.Errorf("%s, page %d: got %d tasks of %d bytes, want also the next, of %d", list, page, len(got), bytes, size(rest[len(got)]))
					}
					if rest = rest[len(got):]; cursor == "" {
						break
					}
					p.Cursor = cursor
				}
			}
		}
	})

	su.run(t, "DefaultLimit", func(h *harness) {
		for range tasks.DefaultListLimit + 1 {
			h.insert()
		}
		got, cursor := h.list(tasks.ListParams{})
		if len(got) != tasks.DefaultListLimit || cursor == "" {
			h.t.Fatalf("List with Limit 0: got %d tasks, cursor %q; want %d and a cursor", len(got), cursor, tasks.DefaultListLimit)
		}
		rest, cursor := h.list(tasks.ListParams{Cursor: cursor})
		if len(rest) != 1 || cursor != "" {
			h.t.Errorf("second page: got %d tasks, cursor %q; want 1, \"\"", len(rest), cursor)
		}
	})

	su.run(t, "MaxLimitIsAllowed", func(h *harness) {
		h.insert()
		if got, _ := h.list(tasks.ListParams{Limit: tasks.MaxListLimit}); len(got) != 1 {
			h.t.Errorf("List with Limit %d: got %d tasks, want 1", tasks.MaxListLimit, len(got))
		}
	})

	su.run(t, "InvalidParams", func(h *harness) {
		h.insert()
		for _, tc := range []struct {
			p     tasks.ListParams
			field string
		}{
			{tasks.ListParams{Limit: -1}, "limit"},
			{tasks.ListParams{Limit: tasks.MaxListLimit + 1}, "limit"},
			{tasks.ListParams{Cursor: "not a cursor!"}, "cursor"},
			{tasks.ListParams{Cursor: "AA"}, "cursor"},
			{tasks.ListParams{States: []tasks.State{"bogus"}}, "status"},
			{tasks.ListParams{MaxBytes: -1}, "max_bytes"},
		} {
			got, cursor, err := h.s.List(h.ctx, tc.p)
			var ve *tasks.ValidationError
			switch {
			case !errors.As(err, &ve):
				h.t.Errorf("List(%+v): got %d tasks, error %v; want a *tasks.ValidationError", tc.p, len(got), err)
			case ve.Field != tc.field:
				h.t.Errorf("List(%+v): got error for field %q, want %q", tc.p, ve.Field, tc.field)
			case len(got) != 0 || cursor != "":
				h.t.Errorf("List(%+v): got %d tasks and cursor %q with the error, want none", tc.p, len(got), cursor)
			}
		}
	})
}
