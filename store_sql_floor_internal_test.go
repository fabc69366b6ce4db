package tasks

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/taskwheel/tasks/internal/testdb"
)

// TestDueFloor checks how claims raise the floor and wake-ups lower it: a
// claim raises it no further than a lowering made while it ran, and not
// at all when it cannot tell which lowerings those were.
func TestDueFloor(t *testing.T) {
	t.Parallel()
	at := func(s int) time.Time { return time.Unix(int64(s), 0) }
	var f dueFloor
	want := func(what string, s int, id string) {
		t.Helper()
		if got, gotID, _ := f.start(); !got.Equal(at(s)) || gotID != id {
			t.Errorf("%s: floor (%d, %q), want (%d, %q)", what, got.Unix(), gotID, s, id)
		}
	}
	if got, id, _ := f.start(); !got.IsZero() || id != "" {
		t.Fatalf("zero floor = (%v, %q), want the head", got, id)
	}
	_, _, since := f.start()
	f.raise(at(10), "b", since)
	want("after a claim that took (10, b)", 10, "b")
	_, _, since = f.start()
	f.raise(at(10), "a", since)
	want("after a claim that took (10, a)", 10, "b")
	f.raise(at(10), "c", since)
	want("after a claim that took (10, c)", 10, "c")
	f.lower(at(10), "c")
	want("after a lowering to (10, c)", 10, "c")
	f.lower(at(10), "bb")
	want("after a lowering to (10, bb)", 10, "bb")
	f.lower(at(5), "")
	want("after a lowering to 5", 5, "")
	f.raise(at(8), "x", since) // began before the lowerings
	want("after a claim begun before a lowering to 5", 5, "")

	_, _, since = f.start()
	f.lower(at(20), "y") // above the floor: keeps it, but bounds the claim
	f.raise(at(30), "x", since)
	want("after a claim that took (30, x) while a task due at 20 was announced", 20, "")
	f.raise(at(1), "x", since)
	want("after a claim that took (1, x)", 20, "")

	_, _, since = f.start()
	for range floorLows + 1 {
		f.lower(at(100), "")
	}
	f.raise(at(50), "x", since)
	want(fmt.Sprintf("after a claim during which %d lowerings were made", floorLows+1), 20, "")
	_, _, since = f.start()
	for range floorLows {
		f.lower(at(100), "")
	}
	f.raise(at(50), "x", since)
	want(fmt.Sprintf("after a claim during which %d lowerings (to 100) were made", floorLows), 50, "x")
}

// TestSQLStore_ClaimSkipsDeadEntries claims and finishes thousands of
// tasks on PostgreSQL, which leaves their entries dead at the head of
// taskwheel_tasks_due until a vacuum, then checks how many pages the next
// claim reads: a few, not every page of dead entries. It does so without
// limits, and with a limit on another key (the one-statement claim under
// limits).
func TestSQLStore_ClaimSkipsDeadEntries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		limit bool
		query string
	}{
		{"no limits", false, claimPostgres},
		{"a limit on another key", true, flowFastPostgres},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testClaimSkipsDeadEntries(t, tc.limit, tc.query)
		})
	}
}

func testClaimSkipsDeadEntries(t *testing.T, limit bool, query string) {
	const (
		ran      = 5000
		batch    = 500
		maxPages = 40 // the index's root and a leaf or two, the task's heap page, the indexes the update writes
	)
	ctx := t.Context()
	s, err := NewSQLStore(testdb.Postgres(t), Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if limit {
		if _, err := s.SetLimit(ctx, &Limit{AppID: "a", Key: "other", Concurrency: 10}); err != nil {
			t.Fatal(err)
		}
	}
	insert := func(n, from int) {
		t.Helper()
		ts := make([]*Task, n)
		for i := range ts {
			ts[i] = &Task{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", from+i), AppID: "a", EventType: "e",
				Data: json.RawMessage(`null`), MaxAttempts: 1}
		}
		if _, err := s.InsertMany(ctx, ts); err != nil {
			t.Fatal(err)
		}
	}
	insert(ran, 0)
	for done := 0; done < ran; {
		ts, err := s.Claim(ctx, batch, time.Minute)
		if err != nil || len(ts) == 0 {
			t.Fatalf("Claim after %d of %d tasks ran = %d tasks, %v; want some", done, ran, len(ts), err)
		}
		outs := make([]Outcome, len(ts))
		for i, task := range ts {
			outs[i] = Outcome{ID: task.ID, Attempt: task.Attempts, State: StateCompleted}
		}
		if _, err := s.Finish(ctx, outs); err != nil {
			t.Fatal(err)
		}
		done += len(ts)
	}
	if s.limited.Load() != limit {
		t.Fatalf("the store claims under limits: %v, want %v", s.limited.Load(), limit)
	}
	insert(1, ran)

	// The claim's pages, read in a transaction rolled back: EXPLAIN
	// ANALYZE runs the update.
	pages := func(at time.Time, id string) int {
		t.Helper()
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		var plan []byte
		if err := tx.QueryRowContext(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+query,
			10, time.Minute.Microseconds(), at, id).Scan(&plan); err != nil {
			t.Fatal(err)
		}
		var explained []struct {
			Plan struct {
				Hit  int `json:"Shared Hit Blocks"`
				Read int `json:"Shared Read Blocks"`
			}
		}
		if err := json.Unmarshal(plan, &explained); err != nil || len(explained) != 1 {
			t.Fatalf("EXPLAIN: %v in %s", err, plan)
		}
		return explained[0].Plan.Hit + explained[0].Plan.Read
	}
	pages(time.Time{}, "") // plan and catalogs, once
	at, id, _ := s.floor.start()
	withFloor, fromHead := pages(at, id), pages(time.Time{}, "")
	t.Logf("a claim after %d tasks ran read %d pages from the floor, %d from the head", ran, withFloor, fromHead)
	if withFloor > maxPages {
		t.Errorf("a claim after %d tasks ran read %d pages, want at most %d (%d from the head of the index)",
			ran, withFloor, maxPages, fromHead)
	}
}
