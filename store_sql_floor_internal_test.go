package tasks

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks/internal/testdb"
)

// get returns the floor.
func (f *dueFloor) get() (time.Time, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at, f.id
}

// TestDueFloor checks how claims raise the floor and wake-ups lower it: a
// claim raises it no further than a lowering made while it ran, however
// many were made, and a claim that ended without a task leaves no trace.
func TestDueFloor(t *testing.T) {
	t.Parallel()
	at := func(s int) time.Time { return time.Unix(int64(s), 0) }
	var f dueFloor
	want := func(what string, s int, id string) {
		t.Helper()
		if got, gotID := f.get(); !got.Equal(at(s)) || gotID != id {
			t.Errorf("%s: floor (%d, %q), want (%d, %q)", what, got.Unix(), gotID, s, id)
		}
	}
	if got, id := f.get(); !got.IsZero() || id != "" {
		t.Fatalf("zero floor = (%v, %q), want the head", got, id)
	}
	_, _, c := f.start()
	f.raise(c, at(10), "b")
	want("after a claim that took (10, b)", 10, "b")
	_, _, c = f.start()
	f.raise(c, at(10), "a")
	want("after a claim that took (10, a)", 10, "b")
	_, _, c = f.start()
	f.raise(c, at(10), "c")
	want("after a claim that took (10, c)", 10, "c")
	_, _, c = f.start() // begins before the lowerings
	f.lower(at(10), "c")
	want("after a lowering to (10, c)", 10, "c")
	f.lower(at(10), "bb")
	want("after a lowering to (10, bb)", 10, "bb")
	f.lower(at(5), "")
	want("after a lowering to 5", 5, "")
	f.raise(c, at(8), "x")
	want("after a claim begun before a lowering to 5", 5, "")

	_, _, c = f.start()
	f.lower(at(20), "y") // above the floor: keeps it, but bounds the claim
	f.raise(c, at(30), "x")
	want("after a claim that took (30, x) while a task due at 20 was announced", 20, "")
	_, _, c = f.start()
	f.raise(c, at(1), "x")
	want("after a claim that took (1, x)", 20, "")

	_, _, c = f.start()
	_, _, ended := f.start()
	for range 1000 {
		f.lower(at(100), "")
	}
	f.lower(at(40), "")
	f.end(ended)
	f.raise(c, at(50), "x")
	want("after a claim during which 1,001 lowerings were made, the earliest to 40", 40, "")
	_, _, c = f.start()
	for range 1000 {
		f.lower(at(100), "")
	}
	f.raise(c, at(50), "x")
	want("after a claim during which 1,000 lowerings (to 100) were made", 50, "x")
	if n := len(f.inFlight); n != 0 {
		t.Errorf("%d claims in flight after all ended, want 0", n)
	}

	// The head, floorHeadEvery after the last read from there.
	f.readHead(at(45), "w", true)
	want("after a read from the head found (45, w)", 45, "w")
	if got, id, c := f.start(); !got.Equal(at(45)) || id != "w" {
		t.Errorf("start just after a read from the head = (%d, %q), want (45, \"w\")", got.Unix(), id)
	} else {
		f.end(c)
	}
	f.headAt = f.headAt.Add(-floorHeadEvery)
	got, id, c := f.start()
	if !got.IsZero() || id != "" {
		t.Errorf("start %v after a read from the head = (%v, %q), want the head", floorHeadEvery, got, id)
	}
	f.raise(c, at(60), "v")
	want("after a claim from the head that took (60, v)", 60, "v")
	if got, id, c := f.start(); !got.Equal(at(60)) || id != "v" {
		t.Errorf("start just after a claim from the head = (%d, %q), want (60, \"v\")", got.Unix(), id)
	} else {
		f.end(c)
	}
	// A claim from the head that took tasks before the floor (a
	// rolled-back claim's): the floor comes down to the last of them.
	f.headAt = f.headAt.Add(-floorHeadEvery)
	_, _, c = f.start()
	f.raise(c, at(52), "u")
	want("after a claim from the head that took (52, u)", 52, "u")
}

// TestDueFloor_LoweringDuringClaim races a claim's start and raise with a
// lowering below the task it took, many times, among other lowerings and
// claims: a claim that began before the lowering (it saw the floor above
// it) must leave the floor at or below it.
func TestDueFloor_LoweringDuringClaim(t *testing.T) {
	t.Parallel()
	at := func(s int) time.Time { return time.Unix(int64(s), 0) }
	for i := range 2000 {
		var f dueFloor
		_, _, c := f.start()
		f.raise(c, at(50), "x")
		var began time.Time
		var wg sync.WaitGroup
		wg.Go(func() {
			var c *floorClaim
			began, _, c = f.start()
			f.raise(c, at(100), "y")
		})
		wg.Go(func() { f.lower(at(200), "") }) // bounds nothing
		wg.Go(func() {
			_, _, c := f.start()
			f.end(c)
		})
		wg.Go(func() { f.lower(at(20), "") })
		wg.Wait()
		if got, _ := f.get(); began.After(at(20)) && got.After(at(20)) {
			t.Fatalf("round %d: floor %d after a claim that began at %d took (100, y) while a lowering to 20 was made",
				i, got.Unix(), began.Unix())
		}
		if len(f.inFlight) != 0 {
			t.Fatalf("round %d: %d claims in flight after all ended", i, len(f.inFlight))
		}
	}
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
	at, id := s.floor.get()
	withFloor, fromHead := pages(at, id), pages(time.Time{}, "")
	t.Logf("a claim after %d tasks ran read %d pages from the floor, %d from the head", ran, withFloor, fromHead)
	if withFloor > maxPages {
		t.Errorf("a claim after %d tasks ran read %d pages, want at most %d (%d from the head of the index)",
			ran, withFloor, maxPages, fromHead)
	}
}

// TestSQLStore_ClaimRaisesFloorPastManyLaterInserts holds a plain claim
// (behind a lock on taskwheel_limits, as a slow claim over a long head of
// dead entries would be) while many tasks are stored, each
// due after the task the claim takes. None of those lowerings bounds the
// claim, so the floor must still rise to that task: a store under a steady
// stream of inserts would otherwise never raise it, and every claim would
// scan the dead entries from the head again, slower each time, so that
// more lowerings fall within each.
func TestSQLStore_ClaimRaisesFloorPastManyLaterInserts(t *testing.T) {
	t.Parallel()
	const tasksDuringClaim = 128 // the old ring remembered 64 lowerings
	ctx := t.Context()
	s, err := NewSQLStore(testdb.Postgres(t), Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	insert := func(id string) *Task {
		t.Helper()
		task, err := s.Insert(ctx, &Task{ID: id, AppID: "a", EventType: "e", Data: json.RawMessage(`null`), MaxAttempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		return task
	}
	old := insert("old")

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `LOCK TABLE taskwheel_limits IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	type claim struct {
		ts  []*Task
		err error
	}
	done := make(chan claim, 1)
	go func() {
		ts, err := s.Claim(ctx, 1, time.Minute)
		done <- claim{ts, err}
	}()
	for waiting := false; !waiting; {
		if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE NOT granted AND relation = 'taskwheel_limits'::regclass)`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	for i := range tasksDuringClaim {
		insert(fmt.Sprintf("later-%03d", i))
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	c := <-done
	if c.err != nil || len(c.ts) != 1 || c.ts[0].ID != old.ID {
		t.Fatalf("Claim = %v, %v; want %s", c.ts, c.err, old.ID)
	}
	if at, id := s.floor.get(); !at.Equal(*old.NextAttemptAt) || id != old.ID {
		t.Errorf("floor after a claim of %s during which %d later tasks were stored = (%v, %q), want (%v, %q)",
			old.ID, tasksDuringClaim, at, id, *old.NextAttemptAt, old.ID)
	}
}

// TestSQLStore_ClaimRaceWithRescheduleLater races a plain claim with a
// reschedule of the earliest due task to a later time, still due, after
// other due tasks: committed after the claim's snapshot but before its scan
// reached the task, it makes the claim take the task at its new due time
// (PostgreSQL reads the row again when it locks it), past tasks the scan
// never reached. The floor must not rise past those: the next claim takes
// them. A head of dead entries that a held snapshot keeps from being
// marked dead in the index makes each scan long enough for the race; if
// no attempt hits it, the test is skipped. It runs on the claim without
// limits and on the one-statement claim under limits.
func TestSQLStore_ClaimRaceWithRescheduleLater(t *testing.T) {
	t.Parallel()
	for _, limited := range []bool{false, true} {
		t.Run(fmt.Sprintf("limited=%v", limited), func(t *testing.T) {
			t.Parallel()
			testClaimRaceWithRescheduleLater(t, limited)
		})
	}
}

func testClaimRaceWithRescheduleLater(t *testing.T, limited bool) {
	ctx := t.Context()
	db := testdb.Postgres(t)
	s, err := NewSQLStore(db, Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	claimPlain := s.claimPlain
	if limited {
		if _, err := s.SetLimit(ctx, &Limit{AppID: "a", Key: "other", Concurrency: 10}); err != nil {
			t.Fatal(err)
		}
		claimPlain = func(ctx context.Context, q queryer, limit int, lease time.Duration) ([]taskRow, error) {
			return s.claimFlowFast(ctx, q, limit, lease)
		}
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO taskwheel_tasks
		(id, app_id, event_type, state, data, run_at, max_attempts, created_at, updated_at)
		SELECT 'dead-' || lpad(i::text, 8, '0'), 'a', 'e', 'scheduled', 'null', now() - interval '2 hours', 1, now(), now()
		FROM generate_series(1, 150000) AS i`); err != nil {
		t.Fatal(err)
	}
	held, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Rollback()
	if _, err := held.ExecContext(ctx, `SELECT 1 FROM taskwheel_tasks LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE taskwheel_tasks SET state = 'completed'`); err != nil {
		t.Fatal(err)
	}
	for attempt := range 20 {
		id := func(name string) string { return fmt.Sprintf("%s-%02d", name, attempt) }
		x, y1, y2, y3 := id("x"), id("y1"), id("y2"), id("y3")
		var ts []*Task
		for _, id := range []string{x, y1, y2, y3} {
			ts = append(ts, &Task{ID: id, AppID: "a", EventType: "e", Data: json.RawMessage(`null`), MaxAttempts: 1})
		}
		if _, err := s.InsertMany(ctx, ts); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `UPDATE taskwheel_tasks SET run_at = now() - CASE id
			WHEN $1 THEN interval '60 minutes' WHEN $2 THEN interval '50 minutes'
			WHEN $3 THEN interval '40 minutes' ELSE interval '30 minutes' END
			WHERE id IN ($1, $2, $3, $4)`, x, y1, y2, y3); err != nil {
			t.Fatal(err)
		}
		s.floor = dueFloor{} // the head
		type claim struct {
			rs  []taskRow
			err error
		}
		done := make(chan claim, 1)
		go func() {
			rs, err := claimPlain(ctx, s.db, 2, time.Minute)
			done <- claim{rs, err}
		}()
		time.Sleep(5 * time.Millisecond)
		if _, err := db.ExecContext(ctx, `UPDATE taskwheel_tasks SET run_at = now() - interval '1 minute' WHERE id = $1`, x); err != nil {
			t.Fatal(err)
		}
		c := <-done
		if c.err != nil {
			t.Fatal(c.err)
		}
		var ids []string
		for _, r := range c.rs {
			ids = append(ids, r.ID)
		}
		if !slices.Equal(ids, []string{x, y1}) && !slices.Equal(ids, []string{y1, x}) {
			// The claim took x before the reschedule, or after it
			// elsewhere: claim the attempt's other tasks, from the head.
			s.floor = dueFloor{}
			if _, err := claimPlain(ctx, s.db, 10, time.Minute); err != nil {
				t.Fatal(err)
			}
			continue
		}
		next, err := claimPlain(ctx, s.db, 10, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		ids = ids[:0]
		for _, r := range next {
			ids = append(ids, r.ID)
		}
		if !slices.Contains(ids, y2) || !slices.Contains(ids, y3) {
			at, fid := s.floor.get()
			t.Fatalf("attempt %d: a claim took %s, rescheduled while it ran, and %s; the next claim took %q, want %s and %s, due (floor (%v, %q))",
				attempt, x, y1, ids, y2, y3, at, fid)
		}
		t.Logf("the race came at attempt %d", attempt)
		return
	}
	t.Skip("no attempt had the reschedule commit within the claim's scan")
}
