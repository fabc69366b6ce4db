package tasktest

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// The counts a dashboard reads: CountTasks, TaskHistogram, CountAttempts,
// and List's bounds on the creation time.

// noLimit is a limit of CountTasks that the tests never reach: their
// counts are exact.
const noLimit = 1 << 30

func (h *harness) countTasks(appID string) map[tasks.State]int {
	h.t.Helper()
	return h.countTasksUpTo(appID, noLimit)
}

func (h *harness) countTasksUpTo(appID string, limit int) map[tasks.State]int {
	h.t.Helper()
	got, err := h.s.CountTasks(h.ctx, appID, limit)
	if err != nil {
		h.t.Fatalf("CountTasks(%s, %d): got error %v, want nil", appID, limit, err)
	}
	for st, n := range got {
		if !st.Valid() || n <= 0 {
			h.t.Errorf("CountTasks(%s, %d): got %d tasks in state %q, want only valid states with a positive count", appID, limit, n, st)
		}
	}
	return got
}

func (h *harness) histogram(appID string, since time.Time, bucket time.Duration) []tasks.Bucket {
	h.t.Helper()
	got, err := h.s.TaskHistogram(h.ctx, appID, since, bucket)
	if err != nil {
		h.t.Fatalf("TaskHistogram(%s, %v, %v): got error %v, want nil", appID, since, bucket, err)
	}
	for _, b := range got {
		checkUTC(h.t, "Bucket Start", b.Start)
	}
	return got
}

func (h *harness) countAttempts(endpointID string, since time.Time) (total, failed int) {
	h.t.Helper()
	total, failed, err := h.s.CountAttempts(h.ctx, endpointID, since)
	if err != nil {
		h.t.Fatalf("CountAttempts(%s, %v): got error %v, want nil", endpointID, since, err)
	}
	return total, failed
}

// after waits until the store's clock is past tm, so that what the store
// does next happens at a later microsecond.
func (h *harness) after(tm time.Time) {
	h.t.Helper()
	eventually(h.t, waitTimeout, "the store's clock passes "+tm.String(), func() bool {
		return h.now().After(tm)
	})
}

// countStates counts ts by state, as CountTasks does.
func countStates(ts []*tasks.Task) map[tasks.State]int {
	counts := make(map[tasks.State]int)
	for _, t := range ts {
		counts[t.State]++
	}
	return counts
}

// histogramOf is the histogram of ts that TaskHistogram returns: their
// terminal tasks by CompletedAt, from since on, in buckets.
func histogramOf(ts []*tasks.Task, since time.Time, bucket time.Duration) []tasks.Bucket {
	byIndex := make(map[int64]*tasks.Bucket)
	for _, t := range ts {
		if !t.State.Terminal() || t.CompletedAt.Before(since) {
			continue
		}
		k := int64(t.CompletedAt.Sub(since) / bucket)
		b := byIndex[k]
		if b == nil {
			b = &tasks.Bucket{Start: since.Add(time.Duration(k) * bucket)}
			byIndex[k] = b
		}
		switch t.State {
		case tasks.StateCompleted:
			b.Completed++
		case tasks.StateFailed:
			b.Failed++
		case tasks.StateCanceled:
			b.Canceled++
		}
	}
	var out []tasks.Bucket
	for _, k := range slices.Sorted(maps.Keys(byIndex)) {
		out = append(out, *byIndex[k])
	}
	return out
}

func fmtBuckets(bs []tasks.Bucket) string {
	var parts []string
	for _, b := range bs {
		parts = append(parts, fmt.Sprintf("{%s c%d f%d x%d}", b.Start.Format(time.RFC3339Nano), b.Completed, b.Failed, b.Canceled))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func sameBuckets(a, b []tasks.Bucket) bool {
	return slices.EqualFunc(a, b, func(x, y tasks.Bucket) bool {
		return x.Start.Equal(y.Start) && x.Completed == y.Completed && x.Failed == y.Failed && x.Canceled == y.Canceled
	})
}

func (su suite) testCountTasks(t *testing.T) {
	su.run(t, "UnknownAppHasNone", func(h *harness) {
		h.insert(app("app_a"))
		if got := h.countTasks("app_none"); len(got) != 0 {
			h.t.Errorf("CountTasks(app_none): got %v, want no counts", got)
		}
	})

	su.run(t, "CountsEachStateOfOneApp", func(h *harness) {
		var mine []*tasks.Task
		for _, s := range []tasks.State{
			tasks.StateScheduled, tasks.StateScheduled, tasks.StateRunning, tasks.StateRetrying,
			tasks.StateCompleted, tasks.StateCompleted, tasks.StateCompleted, tasks.StateFailed, tasks.StateCanceled,
		} {
			mine = append(mine, h.inState(s)) // app_1
		}
		h.completed(app("app_other"))
		h.insert(app("app_other"))
		want := countStates(mine)
		if got := h.countTasks("app_1"); !maps.Equal(got, want) {
			h.t.Errorf("CountTasks(app_1): got %v, want %v", got, want)
		}
		if got, want := h.countTasks("app_other"), map[tasks.State]int{tasks.StateCompleted: 1, tasks.StateScheduled: 1}; !maps.Equal(got, want) {
			h.t.Errorf("CountTasks(app_other): got %v, want %v", got, want)
		}
		// The counts are those of a listing.
		listed := h.listAll(tasks.ListParams{AppID: "app_1", Limit: tasks.MaxListLimit})
		if got := h.countTasks("app_1"); !maps.Equal(got, countStates(listed)) {
			h.t.Errorf("CountTasks(app_1): got %v, List counts %v", got, countStates(listed))
		}
	})

	su.run(t, "LimitBoundsTerminalCounts", func(h *harness) {
		const limit = 3
		// One below the limit, at it and above it, in each terminal state
		// in turn; the live states above it too, which count exactly.
		want := map[tasks.State]int{tasks.StateScheduled: limit + 1, tasks.StateRunning: limit + 1, tasks.StateRetrying: limit + 1}
		for i, st := range []tasks.State{tasks.StateCompleted, tasks.StateFailed, tasks.StateCanceled} {
			want[st] = limit - 1 + i
		}
		for st, n := range want {
			for range n {
				h.inState(st)
			}
		}
		h.completed(app("app_other"))
		if got := h.countTasks("app_1"); !maps.Equal(got, want) {
			h.t.Errorf("CountTasks(app_1) with no limit reached: got %v, want %v", got, want)
		}
		capped := maps.Clone(want)
		capped[tasks.StateCanceled] = limit // limit+1 counts as limit: "limit or more"
		if got := h.countTasksUpTo("app_1", limit); !maps.Equal(got, capped) {
			h.t.Errorf("CountTasks(app_1, %d): got %v, want %v", limit, got, capped)
		}
		one := map[tasks.State]int{tasks.StateCompleted: 1, tasks.StateFailed: 1, tasks.StateCanceled: 1,
			tasks.StateScheduled: limit + 1, tasks.StateRunning: limit + 1, tasks.StateRetrying: limit + 1}
		if got := h.countTasksUpTo("app_1", 1); !maps.Equal(got, one) {
			h.t.Errorf("CountTasks(app_1, 1): got %v, want %v", got, one)
		}
		if got, want := h.countTasksUpTo("app_other", 1), map[tasks.State]int{tasks.StateCompleted: 1}; !maps.Equal(got, want) {
			h.t.Errorf("CountTasks(app_other, 1): got %v, want %v", got, want)
		}
	})

	su.run(t, "RefusesLimitBelowOne", func(h *harness) {
		h.completed()
		for _, limit := range []int{0, -1} {
			got, err := h.s.CountTasks(h.ctx, "app_1", limit)
			var ve *tasks.ValidationError
			if !errors.As(err, &ve) || ve.Field != "limit" {
				h.t.Errorf("CountTasks(app_1, %d): got %v, %v; want a *ValidationError of field limit", limit, got, err)
			}
		}
	})

	su.run(t, "LimitEdgesAndAppsSharingAPrefix", func(h *harness) {
		// Apps whose IDs share a prefix, or look like patterns, count
		// apart.
		apps := []string{"app_1", "app_10", "app_1%", "app__", "APP_1"}
		for i, a := range apps {
			for range i + 1 {
				h.completed(app(a))
			}
		}
		for _, a := range apps {
			h.insert(app(a))
		}
		for i, a := range apps {
			for _, limit := range []int{1, i + 1, noLimit, math.MaxInt} {
				want := map[tasks.State]int{tasks.StateCompleted: min(i+1, limit), tasks.StateScheduled: 1}
				if got := h.countTasksUpTo(a, limit); !maps.Equal(got, want) {
					h.t.Errorf("CountTasks(%s, %d): got %v, want %v", a, limit, got, want)
				}
			}
		}
	})

	su.run(t, "ConcurrentChangesNeverCountATaskTwice", func(h *harness) {
		// While other callers move the app's tasks from state to state,
		// each count is of one moment: every task counted once, in one
		// state. While they also delete tasks, no count is negative and
		// the total never grows.
		const n = 24
		ids := make([]string, n)
		for i := range ids {
			ids[i] = h.insert(maxAttempts(1_000_000)).ID
		}
		later := h.now().Add(time.Hour)
		h.insert(app("app_10"), func(t *tasks.Task) { t.ScheduledRunTime = &later }) // another app, sharing the prefix, not due
		churn := func(stop <-chan struct{}, deleting bool) *sync.WaitGroup {
			var wg sync.WaitGroup
			for w := range 3 {
				wg.Go(func() {
					states := []tasks.State{tasks.StateCompleted, tasks.StateRetrying, tasks.StateFailed, tasks.StateCanceled}
					terminal := []tasks.State{tasks.StateCompleted, tasks.StateFailed, tasks.StateCanceled}
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						got, err := h.s.Claim(h.ctx, 4, time.Minute)
						if err != nil {
							h.t.Errorf("Claim: %v", err)
							return
						}
						var outs []tasks.Outcome
						for _, tk := range got {
							outs = append(outs, tasks.Outcome{ID: tk.ID, Attempt: tk.Attempts, State: states[(i+w)%len(states)], Error: "x"})
						}
						if _, err := h.s.Finish(h.ctx, outs); err != nil {
							h.t.Errorf("Finish: %v", err)
							return
						}
						id := ids[(i*7+w)%n]
						if _, err := h.s.Replay(h.ctx, id, 1); err != nil && !errors.Is(err, tasks.ErrInvalidState) && !errors.Is(err, tasks.ErrNotFound) {
							h.t.Errorf("Replay: %v", err)
							return
						}
						if !deleting {
							continue
						}
						if _, err := h.s.Delete(h.ctx, ids[(i*5+w)%n]); err != nil && !errors.Is(err, tasks.ErrInvalidState) && !errors.Is(err, tasks.ErrNotFound) {
							h.t.Errorf("Delete: %v", err)
							return
						}
						if _, err := h.s.PurgeTasks(h.ctx, terminal[i%len(terminal)], 0, 2); err != nil {
							h.t.Errorf("PurgeTasks: %v", err)
							return
						}
					}
				})
			}
			return &wg
		}
		total := func(counts map[tasks.State]int) int {
			sum := 0
			for _, c := range counts {
				sum += c
			}
			return sum
		}
		stop := make(chan struct{})
		wg := churn(stop, false)
		for range 150 {
			if got := h.countTasks("app_1"); total(got) != n {
				h.t.Errorf("CountTasks(app_1) while tasks change state: got %v, %d tasks; want each of the %d counted once", got, total(got), n)
				break
			}
		}
		close(stop)
		h.wait(wg)
		stop = make(chan struct{})
		wg = churn(stop, true)
		last := n
		for range 150 {
			got := h.countTasks("app_1") // checks that no count is below 1
			if total(got) > last {
				h.t.Errorf("CountTasks(app_1) while tasks are deleted: got %v, %d tasks, more than the %d of the count before", got, total(got), last)
				break
			}
			last = total(got)
		}
		close(stop)
		h.wait(wg)
		if got := h.countTasks("app_10"); !maps.Equal(got, map[tasks.State]int{tasks.StateScheduled: 1}) {
			h.t.Errorf("CountTasks(app_10): got %v, want the one scheduled task", got)
		}
	})

	su.run(t, "FollowsChanges", func(h *harness) {
		tk := h.insert()
		h.cancel(tk.ID)
		if got, want := h.countTasks("app_1"), map[tasks.State]int{tasks.StateCanceled: 1}; !maps.Equal(got, want) {
			h.t.Errorf("CountTasks after Cancel: got %v, want %v", got, want)
		}
		if _, err := h.s.Replay(h.ctx, tk.ID, 1); err != nil {
			h.t.Fatalf("Replay: got error %v, want nil", err)
		}
		if got, want := h.countTasks("app_1"), map[tasks.State]int{tasks.StateScheduled: 1}; !maps.Equal(got, want) {
			h.t.Errorf("CountTasks after Replay: got %v, want %v", got, want)
		}
	})
}

func (su suite) testTaskHistogram(t *testing.T) {
	su.run(t, "RefusesABucketUnderAMicrosecond", func(h *harness) {
		for _, bucket := range []time.Duration{0, -time.Minute, time.Nanosecond, 999} {
			_, err := h.s.TaskHistogram(h.ctx, "app_1", h.now(), bucket)
			var ve *tasks.ValidationError
			if !errors.As(err, &ve) || ve.Field != "bucket" {
				h.t.Errorf("TaskHistogram with bucket %v: got error %v, want a *ValidationError of field bucket", bucket, err)
			}
		}
	})

	su.run(t, "UnknownAppHasNone", func(h *harness) {
		start := h.now()
		h.completed(app("app_a"))
		if got := h.histogram("app_none", start.Add(-time.Hour), time.Hour); len(got) != 0 {
			h.t.Errorf("TaskHistogram(app_none): got %s, want no buckets", fmtBuckets(got))
		}
	})

	su.run(t, "CountsTerminalTasksOfOneApp", func(h *harness) {
		start := h.now()
		h.completed()
		h.completed()
		h.failed()
		h.canceled()
		h.running(time.Hour)
		h.retrying(time.Hour)
		h.insert(at(h.now().Add(time.Hour)))
		h.completed(app("app_other"))
		since := start.Add(-time.Minute)
		want := []tasks.Bucket{{Start: since, Completed: 2, Failed: 1, Canceled: 1}}
		if got := h.histogram("app_1", since, time.Hour); !sameBuckets(got, want) {
			h.t.Errorf("TaskHistogram(app_1, a minute ago, 1h): got %s, want %s", fmtBuckets(got), fmtBuckets(want))
		}
	})

	su.run(t, "BucketsByCompletedAt", func(h *harness) {
		// Tasks that end one after the other, at distinct microseconds.
		var ended []*tasks.Task
		for _, end := range []func(...func(*tasks.Task)) *tasks.Task{h.completed, h.failed, h.completed, h.canceled, h.completed, h.failed} {
			tk := end()
			ended = append(ended, tk)
			h.after(*tk.CompletedAt)
		}
		first := *ended[0].CompletedAt
		for _, tc := range []struct {
			since  time.Time
			bucket time.Duration
		}{
			{first, time.Microsecond},
			{first, 2 * time.Millisecond},
			{first.Add(-time.Millisecond), 3 * time.Millisecond},
			{first.Add(time.Microsecond), time.Hour}, // the first is before since
			{*ended[3].CompletedAt, time.Millisecond},
			{ended[5].CompletedAt.Add(time.Microsecond), time.Millisecond}, // none
			{first.Add(-24 * time.Hour), time.Hour},
		} {
			want := histogramOf(ended, tc.since, tc.bucket)
			if got := h.histogram("app_1", tc.since, tc.bucket); !sameBuckets(got, want) {
				h.t.Errorf("TaskHistogram(app_1, %v, %v): got %s, want %s", tc.since, tc.bucket, fmtBuckets(got), fmtBuckets(want))
			}
		}
	})

	su.run(t, "SinceTakenToTheMicrosecond", func(h *harness) {
		tk := h.completed()
		since := tk.CompletedAt.Add(999 * time.Nanosecond) // the same microsecond
		want := []tasks.Bucket{{Start: *tk.CompletedAt, Completed: 1}}
		if got := h.histogram("app_1", since, time.Minute); !sameBuckets(got, want) {
			h.t.Errorf("TaskHistogram since %v: got %s, want %s", since, fmtBuckets(got), fmtBuckets(want))
		}
	})

	su.run(t, "ReplayedTaskCountsWhenItEndsAgain", func(h *harness) {
		start := h.now().Add(-time.Minute)
		tk := h.failed()
		if _, err := h.s.Replay(h.ctx, tk.ID, 1); err != nil {
			h.t.Fatalf("Replay: got error %v, want nil", err)
		}
		if got := h.histogram("app_1", start, time.Hour); len(got) != 0 {
			h.t.Errorf("TaskHistogram after Replay: got %s, want no buckets", fmtBuckets(got))
		}
		h.finishOne(h.claimOne(tk.ID, time.Hour), tasks.StateCompleted, 0, "")
		want := []tasks.Bucket{{Start: start, Completed: 1}}
		if got := h.histogram("app_1", start, time.Hour); !sameBuckets(got, want) {
			h.t.Errorf("TaskHistogram after the replay completed: got %s, want %s", fmtBuckets(got), fmtBuckets(want))
		}
	})
}

func (su suite) testCountAttempts(t *testing.T) {
	su.run(t, "CountsAnEndpointsAttemptsSince", func(h *harness) {
		now := h.now()
		a := h.running(time.Hour)
		b := h.running(time.Hour)
		attempt := func(ep string, ago time.Duration, msg string) tasks.Attempt {
			return tasks.Attempt{EndpointID: ep, StartedAt: now.Add(-ago), Duration: time.Millisecond, StatusCode: 500, Error: msg}
		}
		h.finish(tasks.Outcome{ID: a.ID, Attempt: a.Attempts, State: tasks.StateRetrying, Delay: time.Hour, Error: "x",
			Attempts: []tasks.Attempt{
				attempt("ep_a", 3*time.Hour, "endpoint answered 500"),
				attempt("ep_a", 30*time.Minute, ""),
				attempt("ep_b", 10*time.Minute, "endpoint answered 500"),
			}}, tasks.Outcome{ID: b.ID, Attempt: b.Attempts, State: tasks.StateCompleted,
			Attempts: []tasks.Attempt{
				attempt("ep_a", 10*time.Minute, "dial tcp: connection refused"),
				attempt("ep_a", 0, ""),
				attempt("", 0, "a func failed"),
			}})
		for _, tc := range []struct {
			ep            string
			since         time.Time
			total, failed int
		}{
			{"ep_a", now.Add(-time.Hour), 3, 1},
			{"ep_a", now.Add(-4 * time.Hour), 4, 2},
			{"ep_a", now.Add(-30 * time.Minute), 3, 1}, // since is inclusive
			{"ep_a", now.Add(-30*time.Minute + time.Microsecond), 2, 1},
			{"ep_a", now.Add(time.Microsecond), 0, 0},
			{"ep_b", now.Add(-time.Hour), 1, 1},
			{"ep_none", now.Add(-time.Hour), 0, 0},
			{"", now.Add(-time.Hour), 0, 0}, // a func's attempts have no endpoint
		} {
			if total, failed := h.countAttempts(tc.ep, tc.since); total != tc.total || failed != tc.failed {
				h.t.Errorf("CountAttempts(%q, now%+v): got %d total, %d failed; want %d, %d",
					tc.ep, tc.since.Sub(now), total, failed, tc.total, tc.failed)
			}
		}
	})

	su.run(t, "OutcomesNotAppliedAreNotCounted", func(h *harness) {
		now := h.now()
		a := h.running(time.Hour)
		h.finishOne(a, tasks.StateCompleted, 0, "")
		stale := tasks.Outcome{ID: a.ID, Attempt: a.Attempts, State: tasks.StateFailed, Error: "late",
			Attempts: []tasks.Attempt{{EndpointID: "ep_a", StartedAt: now, Error: "late"}}}
		if applied := h.finish(stale); applied[0] {
			h.t.Fatalf("Finish of a finished attempt: got applied true, want false")
		}
		if total, failed := h.countAttempts("ep_a", now.Add(-time.Hour)); total != 0 || failed != 0 {
			h.t.Errorf("CountAttempts after a stale outcome: got %d, %d; want 0, 0", total, failed)
		}
	})
}

func (su suite) testListByCreation(t *testing.T) {
	su.run(t, "BoundsOnCreatedAt", func(h *harness) {
		// Five tasks created at distinct microseconds, two apps interleaved.
		var all []*tasks.Task
		for i := range 5 {
			a := "app_1"
			if i == 2 {
				a = "app_2"
			}
			tk := h.insert(app(a))
			all = append(all, tk)
			h.after(tk.CreatedAt)
		}
		c := func(i int) time.Time { return all[i].CreatedAt }
		for _, tc := range []struct {
			name          string
			since, before time.Time
			app           string
			want          []int // indexes into all
		}{
			{"NoBounds", time.Time{}, time.Time{}, "", []int{0, 1, 2, 3, 4}},
			{"SinceIsInclusive", c(1), time.Time{}, "", []int{1, 2, 3, 4}},
			{"BeforeIsExclusive", time.Time{}, c(3), "", []int{0, 1, 2}},
			{"Both", c(1), c(4), "", []int{1, 2, 3}},
			{"BothOneApp", c(1), c(4), "app_1", []int{1, 3}},
			{"SinceAfterBefore", c(3), c(1), "", nil},
			{"SinceEqualsBefore", c(2), c(2), "", nil},
			{"SinceInTheSameMicrosecond", c(1).Add(999 * time.Nanosecond), time.Time{}, "", []int{1, 2, 3, 4}},
			{"BeforeInTheSameMicrosecond", time.Time{}, c(3).Add(999 * time.Nanosecond), "", []int{0, 1, 2}},
			{"Far", time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC), "", []int{0, 1, 2, 3, 4}},
			{"BeyondTheRange", time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(20000, 1, 1, 0, 0, 0, 0, time.UTC), "", []int{0, 1, 2, 3, 4}},
			{"InAnotherZone", c(1).In(time.FixedZone("X", -5*3600)), c(4).In(time.FixedZone("Y", 9*3600)), "", []int{1, 2, 3}},
		} {
			var want []*tasks.Task
			for _, i := range tc.want {
				want = append(want, all[i])
			}
			wantIDs := ids(newestFirst(want))
			p := tasks.ListParams{AppID: tc.app, CreatedSince: tc.since, CreatedBefore: tc.before}
			if got, cursor := h.list(p); !slices.Equal(ids(got), wantIDs) || cursor != "" {
				h.t.Errorf("%s: List(%+v): got %v, cursor %q; want %v, \"\"", tc.name, p, ids(got), cursor, wantIDs)
			}
			p.Limit = 1
			if got := h.listAll(p); !slices.Equal(ids(got), wantIDs) {
				h.t.Errorf("%s: List(%+v) page by page: got %v, want %v", tc.name, p, ids(got), wantIDs)
			}
		}
	})
}
