package tasktest

import (
	"bytes"
	"context"
	"encoding/json"
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

// waitTimeout bounds every wait in the suite: for goroutines to finish, for
// a lease to expire, for a delayed task to become due. It is generous so
// that slow databases under -race pass; a correct store never needs it.
const waitTimeout = 30 * time.Second

// suite runs the conformance tests on the stores newStore makes.
type suite struct {
	newStore func(t *testing.T) tasks.Store
}

// run runs f as a parallel subtest of t on a fresh store.
func (su suite) run(t *testing.T, name string, f func(h *harness)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		s := su.newStore(t)
		if s == nil {
			t.Fatal("newStore returned a nil Store")
		}
		f(&harness{t: t, s: s, ctx: t.Context()})
	})
}

// harness wraps one store for one test. Its methods fail the test when a
// store call returns an unexpected error, check the invariants of every task
// the store returns (see checkTask) and return deep copies, so that a test's
// record of a task cannot change behind its back even if a store's results
// share memory with the store (Get/ReturnsACopy tests that separately).
type harness struct {
	t   *testing.T
	s   tasks.Store
	ctx context.Context
}

// Task options for newTask and insert.
func at(tm time.Time) func(*tasks.Task)   { return func(t *tasks.Task) { t.ScheduledRunTime = &tm } }
func key(k string) func(*tasks.Task)      { return func(t *tasks.Task) { t.IdempotencyKey = k } }
func app(a string) func(*tasks.Task)      { return func(t *tasks.Task) { t.AppID = a } }
func event(e string) func(*tasks.Task)    { return func(t *tasks.Task) { t.EventType = e } }
func maxAttempts(n int) func(*tasks.Task) { return func(t *tasks.Task) { t.MaxAttempts = n } }
func data(s string) func(*tasks.Task)     { return func(t *tasks.Task) { t.Data = json.RawMessage(s) } }
func digest(d string) func(*tasks.Task)   { return func(t *tasks.Task) { t.IdempotencyDigest = d } }

// Idempotency digests as the engine sets them: SHA-256 digests in hex.
const (
	digest1 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	digest2 = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
)

// newTask returns a task ready to insert: a fresh ID, app "app_1", event type
// "test.event", data {"n":1}, three attempts, due now; opts change it.
func (h *harness) newTask(opts ...func(*tasks.Task)) *tasks.Task {
	t := &tasks.Task{
		ID:          uuid.NewString(),
		AppID:       "app_1",
		EventType:   "test.event",
		Data:        json.RawMessage(`{"n":1}`),
		MaxAttempts: 3,
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

// insert inserts newTask(opts...) and returns the stored task.
func (h *harness) insert(opts ...func(*tasks.Task)) *tasks.Task {
	h.t.Helper()
	got, err := h.s.Insert(h.ctx, h.newTask(opts...))
	if err != nil {
		h.t.Fatalf("Insert: got error %v, want nil", err)
	}
	h.check(got)
	return clone(got)
}

// get returns the stored task id.
func (h *harness) get(id string) *tasks.Task {
	h.t.Helper()
	got, err := h.s.Get(h.ctx, id)
	if err != nil {
		h.t.Fatalf("Get(%s): got error %v, want nil", id, err)
	}
	h.check(got)
	return clone(got)
}

// now returns the store's clock, as Upcoming reports it.
func (h *harness) now() time.Time {
	h.t.Helper()
	now, _, err := h.s.Upcoming(h.ctx, 0, 1)
	if err != nil {
		h.t.Fatalf("Upcoming: got error %v, want nil", err)
	}
	if now.IsZero() {
		h.t.Fatalf("Upcoming: got zero now, want the store's clock")
	}
	return now
}

func (h *harness) claim(limit int, lease time.Duration) []*tasks.Task {
	h.t.Helper()
	got, err := h.s.Claim(h.ctx, limit, lease)
	if err != nil {
		h.t.Fatalf("Claim(%d, %v): got error %v, want nil", limit, lease, err)
	}
	if len(got) > limit {
		h.t.Fatalf("Claim(%d, %v): got %d tasks, want at most %d", limit, lease, len(got), limit)
	}
	h.check(got...)
	return clones(got)
}

// claimOne claims one task and fails unless it is task id.
func (h *harness) claimOne(id string, lease time.Duration) *tasks.Task {
	h.t.Helper()
	got := h.claim(1, lease)
	if len(got) != 1 || got[0].ID != id {
		h.t.Fatalf("Claim(1, %v): got %v, want [%s]", lease, ids(got), id)
	}
	return got[0]
}

// claimNone fails if a task can be claimed.
func (h *harness) claimNone() {
	h.t.Helper()
	if got := h.claim(100, time.Hour); len(got) != 0 {
		h.t.Fatalf("Claim: got %v, want no task", ids(got))
	}
}

func (h *harness) finish(outs ...tasks.Outcome) []bool {
	h.t.Helper()
	applied, err := h.s.Finish(h.ctx, outs)
	if err != nil {
		h.t.Fatalf("Finish: got error %v, want nil", err)
	}
	if len(applied) != len(outs) {
		h.t.Fatalf("Finish of %d outcomes: got %d applied flags, want %d", len(outs), len(applied), len(outs))
	}
	return applied
}

// finishOne records the outcome of t's current attempt and fails unless it
// applies.
func (h *harness) finishOne(t *tasks.Task, state tasks.State, delay time.Duration, msg string) {
	h.t.Helper()
	o := tasks.Outcome{ID: t.ID, Attempt: t.Attempts, State: state, Delay: delay, Error: msg}
	if applied := h.finish(o); !applied[0] {
		h.t.Fatalf("Finish(%+v): got applied false, want true", o)
	}
}

func (h *harness) rescue(limit int) int {
	h.t.Helper()
	n, err := h.s.Rescue(h.ctx, limit)
	if err != nil {
		h.t.Fatalf("Rescue(%d): got error %v, want nil", limit, err)
	}
	return n
}

func (h *harness) cancel(id string) *tasks.Task {
	h.t.Helper()
	got, err := h.s.Cancel(h.ctx, id)
	if err != nil {
		h.t.Fatalf("Cancel(%s): got error %v, want nil", id, err)
	}
	h.check(got)
	return clone(got)
}

func (h *harness) extend(d time.Duration, ls ...tasks.Lease) []string {
	h.t.Helper()
	revoked, err := h.s.Extend(h.ctx, ls, d)
	if err != nil {
		h.t.Fatalf("Extend: got error %v, want nil", err)
	}
	return revoked
}

func (h *harness) upcoming(within time.Duration, limit int) (time.Time, []tasks.Due) {
	h.t.Helper()
	now, due, err := h.s.Upcoming(h.ctx, within, limit)
	if err != nil {
		h.t.Fatalf("Upcoming(%v, %d): got error %v, want nil", within, limit, err)
	}
	checkUTC(h.t, "Upcoming now", now)
	for _, d := range due {
		checkUTC(h.t, "Upcoming RunAt of "+d.ID, d.RunAt)
	}
	return now, due
}

func (h *harness) list(p tasks.ListParams) ([]*tasks.Task, string) {
	h.t.Helper()
	got, cursor, err := h.s.List(h.ctx, p)
	if err != nil {
		h.t.Fatalf("List(%+v): got error %v, want nil", p, err)
	}
	h.check(got...)
	return clones(got), cursor
}

// listAll pages through List with p and returns every task.
func (h *harness) listAll(p tasks.ListParams) []*tasks.Task {
	h.t.Helper()
	var all []*tasks.Task
	for range 10000 {
		page, cursor := h.list(p)
		all = append(all, page...)
		if cursor == "" {
			return all
		}
		p.Cursor = cursor
	}
	h.t.Fatalf("List(%+v): still paging after 10000 pages", p)
	return nil
}

// Tasks in each state, for tests that start from one.

// running inserts a task and claims it under lease.
func (h *harness) running(lease time.Duration, opts ...func(*tasks.Task)) *tasks.Task {
	h.t.Helper()
	return h.claimOne(h.insert(opts...).ID, lease)
}

// ended inserts a task, claims it and finishes its first attempt as state.
func (h *harness) ended(state tasks.State, delay time.Duration, msg string, opts ...func(*tasks.Task)) *tasks.Task {
	h.t.Helper()
	t := h.running(time.Hour, opts...)
	h.finishOne(t, state, delay, msg)
	return h.get(t.ID)
}

func (h *harness) completed(opts ...func(*tasks.Task)) *tasks.Task {
	h.t.Helper()
	return h.ended(tasks.StateCompleted, 0, "", opts...)
}

func (h *harness) failed(opts ...func(*tasks.Task)) *tasks.Task {
	h.t.Helper()
	return h.ended(tasks.StateFailed, 0, "boom", opts...)
}

// retrying returns a task whose first attempt failed, due again after delay.
func (h *harness) retrying(delay time.Duration, opts ...func(*tasks.Task)) *tasks.Task {
	h.t.Helper()
	return h.ended(tasks.StateRetrying, delay, "boom", opts...)
}

// canceled returns a task canceled while it was scheduled.
func (h *harness) canceled(opts ...func(*tasks.Task)) *tasks.Task {
	h.t.Helper()
	t := h.insert(opts...)
	return h.cancel(t.ID)
}

// inState returns a task in state s that is not due (canceled: before it
// ever ran).
func (h *harness) inState(s tasks.State) *tasks.Task {
	h.t.Helper()
	switch s {
	case tasks.StateScheduled:
		return h.insert(at(h.now().Add(time.Hour))) // not due: later claims take other tasks
	case tasks.StateRunning:
		return h.running(time.Hour)
	case tasks.StateRetrying:
		return h.retrying(time.Hour)
	case tasks.StateCompleted:
		return h.completed()
	case tasks.StateFailed:
		return h.failed()
	case tasks.StateCanceled:
		return h.canceled()
	}
	h.t.Fatalf("inState(%q): unknown state", s)
	return nil
}

// waitExpired waits until the store's clock is past the lease of every task.
func (h *harness) waitExpired(ts ...*tasks.Task) {
	h.t.Helper()
	var last time.Time
	for _, t := range ts {
		if t.LeaseExpiresAt == nil {
			h.t.Fatalf("task %s: got LeaseExpiresAt nil, want a lease", t.ID)
		}
		if t.LeaseExpiresAt.After(last) {
			last = *t.LeaseExpiresAt
		}
	}
	eventually(h.t, waitTimeout, "the store's clock passes "+last.String(), func() bool {
		return h.now().After(last)
	})
}

// wait waits for wg with a timeout.
func (h *harness) wait(wg *sync.WaitGroup) {
	h.t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		h.t.Fatalf("goroutines still running after %v", waitTimeout)
	}
}

// eventually calls cond until it reports true, failing t if that takes
// longer than timeout. what says what is awaited.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
}

// Assertions.

// check reports tasks that break the invariants every returned task keeps.
func (h *harness) check(ts ...*tasks.Task) {
	h.t.Helper()
	for _, t := range ts {
		checkTask(h.t, t)
	}
}

// checkTask reports the ways t breaks the invariants of a stored task: a
// valid state; times in UTC and kept to the microsecond; NextAttemptAt set
// exactly while pending, LeaseExpiresAt exactly while running, CompletedAt
// exactly while terminal.
func checkTask(tb testing.TB, t *tasks.Task) {
	tb.Helper()
	if t == nil {
		tb.Errorf("got a nil task, want a task")
		return
	}
	if !t.State.Valid() {
		tb.Errorf("task %s: got State %q, want a valid state", t.ID, t.State)
	}
	if t.CreatedAt.IsZero() || t.UpdatedAt.IsZero() {
		tb.Errorf("task %s: got CreatedAt %v, UpdatedAt %v, want both set", t.ID, t.CreatedAt, t.UpdatedAt)
	}
	if t.UpdatedAt.Before(t.CreatedAt) {
		tb.Errorf("task %s: got UpdatedAt %v before CreatedAt %v", t.ID, t.UpdatedAt, t.CreatedAt)
	}
	checkUTC(tb, t.ID+" CreatedAt", t.CreatedAt)
	checkUTC(tb, t.ID+" UpdatedAt", t.UpdatedAt)
	for name, p := range map[string]*time.Time{
		"ScheduledRunTime": t.ScheduledRunTime,
		"NextAttemptAt":    t.NextAttemptAt,
		"CompletedAt":      t.CompletedAt,
		"LeaseExpiresAt":   t.LeaseExpiresAt,
	} {
		if p != nil {
			checkUTC(tb, t.ID+" "+name, *p)
		}
	}
	pending := t.State == tasks.StateScheduled || t.State == tasks.StateRetrying
	if (t.NextAttemptAt != nil) != pending {
		tb.Errorf("task %s in state %s: got NextAttemptAt %s, want it set exactly while scheduled or retrying", t.ID, t.State, fmtTime(t.NextAttemptAt))
	}
	if (t.LeaseExpiresAt != nil) != (t.State == tasks.StateRunning) {
		tb.Errorf("task %s in state %s: got LeaseExpiresAt %s, want it set exactly while running", t.ID, t.State, fmtTime(t.LeaseExpiresAt))
	}
	if (t.CompletedAt != nil) != t.State.Terminal() {
		tb.Errorf("task %s in state %s: got CompletedAt %s, want it set exactly in a terminal state", t.ID, t.State, fmtTime(t.CompletedAt))
	}
	if t.Attempts < 0 {
		tb.Errorf("task %s: got Attempts %d, want >= 0", t.ID, t.Attempts)
	}
	if t.ReplayedAfter < 0 || t.ReplayedAfter > t.Attempts {
		tb.Errorf("task %s: got ReplayedAfter %d, want 0 to Attempts (%d)", t.ID, t.ReplayedAfter, t.Attempts)
	}
}

// checkUTC reports a time that is not in UTC or not kept to the microsecond.
func checkUTC(tb testing.TB, what string, tm time.Time) {
	tb.Helper()
	if tm.Location() != time.UTC {
		tb.Errorf("%s: got location %v (%v), want UTC", what, tm.Location(), tm)
	}
	if tm.Nanosecond()%1000 != 0 {
		tb.Errorf("%s: got %v, want a time kept to the microsecond", what, tm.Format(time.RFC3339Nano))
	}
}

func (h *harness) wantState(t *tasks.Task, want tasks.State) {
	h.t.Helper()
	if t.State != want {
		h.t.Errorf("task %s: got State %s, want %s", t.ID, t.State, want)
	}
}

// wantBetween reports got unless lo <= got <= hi.
func (h *harness) wantBetween(what string, got *time.Time, lo, hi time.Time) {
	h.t.Helper()
	if got == nil {
		h.t.Errorf("%s: got nil, want a time in [%v, %v]", what, lo, hi)
		return
	}
	if got.Before(lo) || got.After(hi) {
		h.t.Errorf("%s: got %v, want a time in [%v, %v]", what, got.Format(time.RFC3339Nano), lo.Format(time.RFC3339Nano), hi.Format(time.RFC3339Nano))
	}
}

// wantTime reports got unless it is the instant want (nil for none).
func (h *harness) wantTime(what string, got, want *time.Time) {
	h.t.Helper()
	if !eqTime(got, want) {
		h.t.Errorf("%s: got %s, want %s", what, fmtTime(got), fmtTime(want))
	}
}

// wantSame reports the differences between got and want.
func (h *harness) wantSame(what string, got, want *tasks.Task) {
	h.t.Helper()
	if d := diffTask(got, want); len(d) > 0 {
		h.t.Errorf("%s: task differs:\n\t%s", what, strings.Join(d, "\n\t"))
	}
}

// wantIs reports err unless it matches target.
func (h *harness) wantIs(what string, err, target error) {
	h.t.Helper()
	if !errors.Is(err, target) {
		h.t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

// diffTask lists the fields in which got and want differ, times compared as
// instants.
func diffTask(got, want *tasks.Task) []string {
	if got == nil || want == nil {
		if got == want {
			return nil
		}
		return []string{fmt.Sprintf("got %v, want %v", got, want)}
	}
	var d []string
	add := func(field string, g, w any) {
		d = append(d, fmt.Sprintf("%s: got %v, want %v", field, g, w))
	}
	if got.ID != want.ID {
		add("ID", got.ID, want.ID)
	}
	if got.AppID != want.AppID {
		add("AppID", got.AppID, want.AppID)
	}
	if got.EventType != want.EventType {
		add("EventType", got.EventType, want.EventType)
	}
	if got.TraceParent != want.TraceParent || got.TraceState != want.TraceState {
		add("TraceParent, TraceState", got.TraceParent+" "+got.TraceState, want.TraceParent+" "+want.TraceState)
	}
	if got.State != want.State {
		add("State", got.State, want.State)
	}
	if !bytes.Equal(got.Data, want.Data) {
		add("Data", fmtData(got.Data), fmtData(want.Data))
	}
	if got.Attempts != want.Attempts {
		add("Attempts", got.Attempts, want.Attempts)
	}
	if got.ReplayedAfter != want.ReplayedAfter {
		add("ReplayedAfter", got.ReplayedAfter, want.ReplayedAfter)
	}
	if got.MaxAttempts != want.MaxAttempts {
		add("MaxAttempts", got.MaxAttempts, want.MaxAttempts)
	}
	if got.LastError != want.LastError {
		add("LastError", fmt.Sprintf("%q", got.LastError), fmt.Sprintf("%q", want.LastError))
	}
	if got.IdempotencyKey != want.IdempotencyKey {
		add("IdempotencyKey", fmt.Sprintf("%q", got.IdempotencyKey), fmt.Sprintf("%q", want.IdempotencyKey))
	}
	if got.IdempotencyDigest != want.IdempotencyDigest {
		add("IdempotencyDigest", fmt.Sprintf("%q", got.IdempotencyDigest), fmt.Sprintf("%q", want.IdempotencyDigest))
	}
	if got.Timeout != want.Timeout {
		add("Timeout", got.Timeout, want.Timeout)
	}
	if got.CancelRequested != want.CancelRequested {
		add("CancelRequested", got.CancelRequested, want.CancelRequested)
	}
	if (got.EndpointID == nil) != (want.EndpointID == nil) || got.EndpointID != nil && *got.EndpointID != *want.EndpointID {
		add("EndpointID", fmtString(got.EndpointID), fmtString(want.EndpointID))
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		add("CreatedAt", got.CreatedAt, want.CreatedAt)
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		add("UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	}
	for _, f := range []struct {
		name      string
		got, want *time.Time
	}{
		{"ScheduledRunTime", got.ScheduledRunTime, want.ScheduledRunTime},
		{"NextAttemptAt", got.NextAttemptAt, want.NextAttemptAt},
		{"CompletedAt", got.CompletedAt, want.CompletedAt},
		{"LeaseExpiresAt", got.LeaseExpiresAt, want.LeaseExpiresAt},
	} {
		if !eqTime(f.got, f.want) {
			add(f.name, fmtTime(f.got), fmtTime(f.want))
		}
	}
	return d
}

func eqTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "nil"
	}
	return t.Format(time.RFC3339Nano)
}

func fmtString(s *string) string {
	if s == nil {
		return "nil"
	}
	return fmt.Sprintf("%q", *s)
}

// fmtData quotes d, shortened when long.
func fmtData(d []byte) string {
	if d == nil {
		return "nil"
	}
	if len(d) > 80 {
		return fmt.Sprintf("%q… (%d bytes)", d[:80], len(d))
	}
	return fmt.Sprintf("%q", d)
}

func ids(ts []*tasks.Task) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

func dueIDs(ds []tasks.Due) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

// newestFirst sorts ts in List order: newest CreatedAt first, then ID
// descending.
func newestFirst(ts []*tasks.Task) []*tasks.Task {
	ts = slices.Clone(ts)
	slices.SortFunc(ts, func(a, b *tasks.Task) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return ts
}

func ptr[T any](v T) *T { return &v }

func clones(ts []*tasks.Task) []*tasks.Task {
	out := make([]*tasks.Task, len(ts))
	for i, t := range ts {
		out[i] = clone(t)
	}
	return out
}

// clone returns a deep copy of t, so that later changes to what t's pointers
// point at cannot change the copy.
func clone(t *tasks.Task) *tasks.Task {
	c := *t
	c.Data = slices.Clone(t.Data)
	for _, p := range []**time.Time{&c.ScheduledRunTime, &c.NextAttemptAt, &c.CompletedAt, &c.LeaseExpiresAt} {
		if *p != nil {
			*p = ptr(**p)
		}
	}
	if c.EndpointID != nil {
		c.EndpointID = ptr(*c.EndpointID)
	}
	return &c
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// title returns s with its first letter in upper case, for subtest names.
func title(s tasks.State) string {
	if s == "" {
		return ""
	}
	return strings.ToUpper(string(s[:1])) + string(s[1:])
}

// waitPast waits until the store's clock is past tm, so that a time the
// store sets next differs from tm.
func (h *harness) waitPast(tm time.Time) {
	h.t.Helper()
	eventually(h.t, waitTimeout, "the store's clock passes "+tm.String(), func() bool {
		return h.now().After(tm)
	})
}
