package postgres_test

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/postgres"
)

// arrayIDs are task IDs that need quoting in an array's text form.
var arrayIDs = []string{"NULL", "null", "a,b", `q"uo\te`, "{brace}", " lead", "trail ", "tab\tid", "ünï-çødé-✓", "plain-1", "plain-2", "plain-3", "plain-4", "plain-5"}

// arraysLeft is what the scenario leaves, without clocks.
type arraysLeft struct {
	Tasks    map[string]string
	Attempts map[string][]string
	Limits   []string
	Replayed int
	Canceled int
}

// runArrays runs claims under limits, Extend, Finish with edge
// values and the bulk operations on s, and returns what it left.
func runArrays(t *testing.T, s tasks.Store) arraysLeft {
	t.Helper()
	ctx := t.Context()
	if _, err := s.SetLimit(ctx, &tasks.Limit{AppID: "app", Key: "lim", Rate: 1000, Burst: 50, Concurrency: 8}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetLimit(ctx, &tasks.Limit{AppID: "app", Key: "stop", Concurrency: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PauseLimit(ctx, "app", "stop", true); err != nil {
		t.Fatal(err)
	}
	var ts []*tasks.Task
	for i, id := range arrayIDs {
		ev := "lim"
		switch {
		case i%3 == 1:
			ev = "e"
		case i == 13:
			ev = "stop"
		}
		ts = append(ts, &tasks.Task{ID: id, AppID: "app", EventType: ev, Data: []byte(`{"k":"v\u0000"}`), MaxAttempts: 3})
	}
	if _, err := s.InsertMany(ctx, ts); err != nil {
		t.Fatalf("InsertMany: %v", err)
	}
	claimed, err := s.Claim(ctx, 100, time.Minute)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	sort.Slice(claimed, func(i, j int) bool { return claimed[i].ID < claimed[j].ID })
	var leases []tasks.Lease
	for _, c := range claimed {
		leases = append(leases, tasks.Lease{ID: c.ID, Attempt: c.Attempts})
	}
	// Leases of no task, and with attempt numbers past int32.
	leases = append(leases, tasks.Lease{ID: "nope", Attempt: 1}, tasks.Lease{ID: "", Attempt: 0})
	revoked, err := s.Extend(ctx, leases, 90*time.Second)
	if err != nil {
		t.Fatalf("Extend: %v", err)
	}
	sort.Strings(revoked)
	long := strings.Repeat("é∑ ", 100_000)
	started := time.Date(2026, 1, 2, 3, 4, 5, 999_999_999, time.FixedZone("odd", 5*3600+1800+17))
	var outs []tasks.Outcome
	for i, c := range claimed {
		o := tasks.Outcome{ID: c.ID, Attempt: c.Attempts}
		switch i % 6 {
		case 0:
			o.State = tasks.StateCompleted // no attempts, nil slice
		case 1:
			o.State = tasks.StateCompleted
			o.Attempts = []tasks.Attempt{} // empty, not nil
			o.EndpointID = "ep,{1}"
		case 2:
			o.State = tasks.StateRetrying
			o.Delay = time.Hour + 7*time.Nanosecond
			o.Error = `err "quoted" \ {x} NULL`
			o.EndpointID = "ep_1"
			o.Attempts = []tasks.Attempt{{Number: c.Attempts, EndpointID: "ep_1", StartedAt: started, Duration: 1500 * time.Microsecond,
				StatusCode: 503, Response: "NULL", Error: long}}
		case 3:
			o.State = tasks.StateFailed
			o.Error = "nul\x00byte and bad utf8 \xff\xfe"
			o.Attempts = []tasks.Attempt{{Number: c.Attempts, StartedAt: time.Time{}, Error: "", Response: ""},
				{Number: c.Attempts, StartedAt: started.Add(-time.Hour), Response: " spaced ", Error: "\t"}}
		case 4:
			o.State = tasks.StateRetrying
			o.Delay = 2 * time.Minute
			o.WaitReason = "endpoint ✓ busy"
			o.WaitEndpoint = "ep_9"
		case 5:
			o.State = tasks.StateCanceled
			o.Error = ""
		}
		outs = append(outs, o)
	}
	outs = append(outs, tasks.Outcome{ID: "NULL ", Attempt: 1, State: tasks.StateCompleted})
	applied, err := s.Finish(ctx, outs)
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	// Claim again: waiting tasks and whatever is left under the limits.
	again, err := s.Claim(ctx, 100, time.Minute)
	if err != nil {
		t.Fatalf("Claim again: %v", err)
	}
	var outs2 []tasks.Outcome
	for _, c := range again {
		outs2 = append(outs2, tasks.Outcome{ID: c.ID, Attempt: c.Attempts, State: tasks.StateFailed, Error: "second"})
	}
	if _, err := s.Finish(ctx, outs2); err != nil {
		t.Fatalf("Finish again: %v", err)
	}
	snap := arraysLeft{Tasks: map[string]string{}, Attempts: map[string][]string{}}
	replayed, _, err := s.ReplayMany(ctx, tasks.ListParams{AppID: "app", States: []tasks.State{tasks.StateFailed}, EventType: "lim", CreatedSince: time.Now().Add(-time.Hour), CreatedBefore: time.Now().Add(time.Hour)}, 2)
	if err != nil {
		t.Fatalf("ReplayMany: %v", err)
	}
	canceled, _, err := s.CancelMany(ctx, tasks.ListParams{AppID: "app", States: []tasks.State{tasks.StateRetrying, tasks.StateScheduled}, CreatedSince: time.Now().Add(-time.Hour), CreatedBefore: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatalf("CancelMany: %v", err)
	}
	snap.Replayed, snap.Canceled = replayed, canceled
	for _, id := range arrayIDs {
		tk, err := s.Get(ctx, id)
		if err != nil {
			t.Fatalf("Get %q: %v", id, err)
		}
		ep := ""
		if tk.EndpointID != nil {
			ep = *tk.EndpointID
		}
		snap.Tasks[id] = fmt.Sprintf("state=%s attempts=%d replayed=%d max=%d err=%q ep=%q cancel=%v data=%s",
			tk.State, tk.Attempts, tk.ReplayedAfter, tk.MaxAttempts, tk.LastError, ep, tk.CancelRequested, tk.Data)
		as, err := s.Attempts(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			snap.Attempts[id] = append(snap.Attempts[id], fmt.Sprintf("%d %q %s %v %d %q %d", a.Number, a.EndpointID,
				a.StartedAt.UTC().Format(time.RFC3339Nano), a.Duration, a.StatusCode, a.Response, len(a.Error)))
		}
	}
	ls, err := s.ListLimits(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		snap.Limits = append(snap.Limits, fmt.Sprintf("%s r=%v b=%d c=%d p=%v", l.Key, l.Rate, l.Burst, l.Concurrency, l.Paused))
	}
	snap.Limits = append(snap.Limits, fmt.Sprintf("revoked=%q applied=%v", revoked, applied))
	return snap
}

// The statements given arrays, run in QueryExecModeDescribeExec by a store
// from postgres.New, leave what the same statements leave run in pgx's
// default mode by a store from tasks.NewSQLStore, with edge values: IDs
// that need quoting in an array's text, long, NUL-bearing and invalid UTF-8
// errors, odd time zones, nanoseconds, unknown tasks.
func TestStore_ArrayStatementsAsInDefaultMode(t *testing.T) {
	t.Parallel()
	testdb.SkipWithoutPostgres(t)
	newStore := func(t *testing.T, planned bool) tasks.Store {
		db := testdb.Postgres(t)
		var s interface {
			tasks.Store
			Migrate(context.Context) error
		}
		if planned {
			ps, err := postgres.New(db)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ps.Close() })
			s = ps
		} else {
			ss, err := tasks.NewSQLStore(db, tasks.Postgres)
			if err != nil {
				t.Fatal(err)
			}
			s = ss
		}
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s
	}
	var snaps [2]arraysLeft
	for i, planned := range []bool{false, true} {
		snaps[i] = runArrays(t, newStore(t, planned))
	}
	if !reflect.DeepEqual(snaps[0], snaps[1]) {
		for id, v := range snaps[0].Tasks {
			if snaps[1].Tasks[id] != v {
				t.Errorf("task %q:\n default: %s\n planned: %s", id, v, snaps[1].Tasks[id])
			}
		}
		for id, v := range snaps[0].Attempts {
			if !reflect.DeepEqual(snaps[1].Attempts[id], v) {
				t.Errorf("attempts %q:\n default: %q\n planned: %q", id, v, snaps[1].Attempts[id])
			}
		}
		if !reflect.DeepEqual(snaps[0].Limits, snaps[1].Limits) || snaps[0].Replayed != snaps[1].Replayed || snaps[0].Canceled != snaps[1].Canceled {
			t.Errorf("default: %v %d %d\nplanned: %v %d %d", snaps[0].Limits, snaps[0].Replayed, snaps[0].Canceled,
				snaps[1].Limits, snaps[1].Replayed, snaps[1].Canceled)
		}
	}
}
