package tasks

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/taskwheel/tasks/internal/testdb"
)

// floorStore returns a migrated PostgreSQL store in a schema of its own,
// and a function that stores a due task with the given ID due at.
func floorStore(t *testing.T) (*SQLStore, *sql.DB, func(id string, at time.Time)) {
	t.Helper()
	db := testdb.Postgres(t)
	s := migrated(t, db, Postgres)
	insert := func(id string, at time.Time) {
		t.Helper()
		if _, err := s.Insert(t.Context(), &Task{ID: id, AppID: "a", EventType: "e", MaxAttempts: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(t.Context(), `UPDATE taskwheel_tasks SET run_at = $1 WHERE id = $2`, at, id); err != nil {
			t.Fatal(err)
		}
	}
	return s, db, insert
}

// An engine's claim on PostgreSQL scans from the floor its flowClaim
// carries and moves it to the first task it took; other claims scan from
// the start and move nothing.
func TestSQLStore_ClaimFromFloor(t *testing.T) {
	t.Parallel()
	s, _, insert := floorStore(t)
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	ids := []string{"00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002", "00000000-0000-4000-8000-000000000003"}
	for i, id := range ids {
		insert(id, t0.Add(time.Duration(i)*time.Second))
	}
	claim := func(fc *flowClaim) string {
		t.Helper()
		ctx := t.Context()
		if fc != nil {
			ctx = context.WithValue(ctx, flowClaimKey{}, fc)
		}
		ts, err := s.Claim(ctx, 1, time.Minute)
		if err != nil || len(ts) != 1 {
			t.Fatalf("Claim: got %d tasks, error %v; want 1", len(ts), err)
		}
		return ts[0].ID
	}
	second := duePos{t0.Add(time.Second), ids[1]}
	fc := &flowClaim{from: second}
	if got := claim(fc); got != ids[1] {
		t.Fatalf("claim from the second task: got %s, want %s", got, ids[1])
	}
	if !fc.moved || fc.next != second {
		t.Errorf("floor after it: moved %v to %+v, want %+v", fc.moved, fc.next, second)
	}
	fc = &flowClaim{}
	if got := claim(fc); got != ids[0] {
		t.Fatalf("claim from the start: got %s, want %s", got, ids[0])
	}
	if want := (duePos{t0, ids[0]}); !fc.moved || fc.next != want {
		t.Errorf("floor after it: moved %v to %+v, want %+v", fc.moved, fc.next, want)
	}
	if got := claim(nil); got != ids[2] {
		t.Fatalf("claim without a flowClaim: got %s, want %s", got, ids[2])
	}
	fc = &flowClaim{from: second}
	if ts, err := s.Claim(context.WithValue(t.Context(), flowClaimKey{}, fc), 1, time.Minute); err != nil || len(ts) != 0 || fc.moved {
		t.Errorf("claim of nothing: got %d tasks, error %v, moved %v; want none", len(ts), err, fc.moved)
	}
}

// pauseDue replaces the store's due scan (taskwheel_due, migration 0026)
// with one that sleeps, the first time in a transaction, when it reads the
// task with ID id, before it locks it; it returns a function that waits
// until a claim sleeps there.
func pauseDue(t *testing.T, db *sql.DB, id string) (sleeping func()) {
	t.Helper()
	b, err := migrationFiles.ReadFile("migrations/postgres/0026_due_from.sql")
	if err != nil {
		t.Fatal(err)
	}
	fn := string(b)
	for old, repl := range map[string]string{
		"CREATE FUNCTION":           "CREATE OR REPLACE FUNCTION",
		"\tORDER BY t.run_at, t.id": "\t\tAND taskwheel_test_pause(t.id)\n\tORDER BY t.run_at, t.id",
	} {
		if strings.Count(fn, old) != 1 {
			t.Fatalf("taskwheel_due: %q not found once in migration 0026", old)
		}
		fn = strings.Replace(fn, old, repl, 1)
	}
	pause := fmt.Sprintf(`CREATE FUNCTION taskwheel_test_pause(id text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	IF id = '%s' AND current_setting('taskwheel.test_paused', true) IS DISTINCT FROM 'y' THEN
		PERFORM set_config('taskwheel.test_paused', 'y', true);
		PERFORM pg_sleep(1);
	END IF;
	RETURN true;
END $$`, id)
	for _, q := range []string{pause, fn} {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var n int
			if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM pg_stat_activity
				WHERE wait_event = 'PgSleep' AND query LIKE '%taskwheel_due%'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("no claim paused in the due scan")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// A task rescheduled, and committed, after a claim's snapshot but before
// the claim locked it is locked at its new version (PostgreSQL re-reads
// the row), whose due time may be later than tasks the scan never reached:
// the claim must not move the floor past them.
func TestSQLStore_ClaimFloorUnseenVersion(t *testing.T) {
	s, db, insert := floorStore(t)
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	first, second := "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
	insert(first, t0)
	insert(second, t0.Add(time.Second))
	sleeping := pauseDue(t, db, first)

	fc := &flowClaim{}
	type result struct {
		ts  []*Task
		err error
	}
	done := make(chan result, 1)
	go func() {
		ts, err := s.Claim(context.WithValue(t.Context(), flowClaimKey{}, fc), 1, time.Minute)
		done <- result{ts, err}
	}()
	sleeping()
	later := t0.Add(2 * time.Second) // past the second task, still due
	if _, err := db.ExecContext(t.Context(), `UPDATE taskwheel_tasks SET run_at = $1 WHERE id = $2`, later, first); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || len(r.ts) != 1 || r.ts[0].ID != first || !r.ts[0].dueAt.Equal(later) {
		t.Fatalf("Claim: got %v, error %v; want the first task, due at its new time", r.ts, r.err)
	}
	if fc.moved {
		t.Fatalf("the claim moved the floor to %+v, past the second task, which it never read", fc.next)
	}
}

// A claim that fails moves the floor nowhere.
func TestSQLStore_ClaimFloorFailedClaim(t *testing.T) {
	s, db, insert := floorStore(t)
	first := "00000000-0000-4000-8000-000000000001"
	insert(first, time.Now().Add(-time.Hour))
	sleeping := pauseDue(t, db, first)
	ctx, cancel := context.WithCancel(t.Context())
	fc := &flowClaim{}
	done := make(chan error, 1)
	go func() {
		_, err := s.Claim(context.WithValue(ctx, flowClaimKey{}, fc), 1, time.Minute)
		done <- err
	}()
	sleeping()
	cancel()
	if err := <-done; err == nil {
		t.Fatal("Claim: no error after its context ended")
	}
	if fc.moved {
		t.Fatalf("a failed claim moved the floor to %+v", fc.next)
	}
}

// The scheduler lowers the claim floor to what it is told may be due:
// hints less floorMargin; the start after a read of the upcoming tasks, and
// when tasks it was not told of may be due.
func TestScheduler_Floor(t *testing.T) {
	epoch := time.Now()
	s := newScheduler(&Config{Workers: 4, PollInterval: time.Second}, epoch, 0)
	if s.floor != (duePos{}) {
		t.Fatalf("new scheduler: floor %+v, want the start", s.floor)
	}
	at := epoch.Add(time.Minute)
	s.floor = duePos{at, "m"}

	s.addHints(0, []Due{{ID: "later", RunAt: at.Add(time.Second)}, {ID: flowWakeID, RunAt: epoch}})
	if want := (duePos{at, "m"}); s.floor != want {
		t.Errorf("after a later hint and a flow wake-up: floor %+v, want %+v", s.floor, want)
	}
	s.addHints(0, []Due{{ID: "h", RunAt: at}})
	if want := (duePos{at.Add(-floorMargin), ""}); s.floor != want {
		t.Errorf("after a hint: floor %+v, want %+v", s.floor, want)
	}
	s.floor = duePos{at, "m"}
	s.received(upcomingRead{storeNow: epoch, atNs: 0, due: []Due{
		{ID: "b", RunAt: at}, {ID: "c", RunAt: at.Add(time.Second)}, {ID: flowWakeID, RunAt: epoch},
	}})
	if s.floor != (duePos{}) {
		t.Errorf("after a read: floor %+v, want the start", s.floor)
	}
	s.floor = duePos{at, "m"}
	s.mayBeDue()
	if s.floor != (duePos{}) {
		t.Errorf("after mayBeDue: floor %+v, want the start", s.floor)
	}
}
