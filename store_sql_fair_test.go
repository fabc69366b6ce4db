package tasks_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/sqlite"
)

// TestSQLStore_FairClaimFailingMidwayStartsNothing (L4, F8): a claim under
// a backlog serves the apps in turn, one statement each; when the database
// fails the claim of the second app, the claim returns its error, and the
// tasks of the first app must not stay running, claimed by nobody, until
// their leases expire and an attempt is lost: the claim starts none.
func TestSQLStore_FairClaimFailingMidwayStartsNothing(t *testing.T) {
	t.Parallel()
	for _, d := range []struct {
		name          string
		open          func(t *testing.T) (tasks.Store, *sql.DB)
		inject, clear []string
	}{
		{"SQLite", func(t *testing.T) (tasks.Store, *sql.DB) {
			path := testdb.SQLitePath(t)
			s, err := sqlite.Open(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000&_journal_mode=WAL")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return s, db
		}, []string{`CREATE TRIGGER zz_fail BEFORE UPDATE OF state ON taskwheel_tasks
WHEN NEW.state = 'running' AND NEW.app_id = 'app_2' BEGIN SELECT RAISE(ABORT, 'injected'); END`},
			[]string{`DROP TRIGGER zz_fail`}},
		{"Postgres", func(t *testing.T) (tasks.Store, *sql.DB) {
			db := testdb.Postgres(t)
			s, err := tasks.NewSQLStore(db, tasks.Postgres)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			return s, db
		}, []string{`CREATE FUNCTION zz_fail() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'injected'; END $$`,
			`CREATE TRIGGER zz_fail BEFORE UPDATE ON taskwheel_tasks FOR EACH ROW
WHEN (NEW.state = 'running' AND NEW.app_id = 'app_2') EXECUTE FUNCTION zz_fail()`},
			[]string{`DROP TRIGGER zz_fail ON taskwheel_tasks`}},
	} {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			s, db := d.open(t)
			ctx := t.Context()
			e := newEngine(t, s, nil) // not started: the test claims
			var ids []string
			for _, app := range []string{"app_1", "app_2"} {
				for range 6 {
					ids = append(ids, enqueue(t, e, tasks.NewTask{AppID: app, EventType: "x"}).ID)
				}
			}
			// A claim that takes all it asks for: a backlog, so the next
			// claim serves the apps in turn.
			first, err := s.Claim(ctx, 2, time.Hour)
			if err != nil || len(first) != 2 {
				t.Fatalf("Claim: got %d tasks, %v; want 2", len(first), err)
			}
			for _, q := range d.inject {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := s.Claim(ctx, 4, time.Hour); err == nil {
				t.Fatalf("Claim with app_2's claim failing: got %d tasks and no error, want the error", len(got))
			}
			for _, q := range d.clear {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			running := 0
			for _, id := range ids {
				tk, err := e.Get(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if tk.State == tasks.StateRunning {
					running++
				}
			}
			if running != 2 {
				t.Errorf("after a failed claim: %d tasks running, want the 2 claimed before it", running)
			}
		})
	}
}
