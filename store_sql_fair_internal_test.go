package tasks

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/taskwheel/tasks/internal/testdb"
)

// fairStores opens a migrated SQLite store and a migrated PostgreSQL
// store, each in a database of its own (the latter skips the test
// without PostgreSQL).
var fairStores = map[string]func(t *testing.T) *SQLStore{
	"SQLite":   func(t *testing.T) *SQLStore { _, s := openSQLite(t); return s },
	"Postgres": func(t *testing.T) *SQLStore { return migrated(t, testdb.Postgres(t), Postgres) },
}

// insertAt stores n tasks of app, due at at, or now if at is nil.
func insertAt(t *testing.T, s *SQLStore, app string, n int, at *time.Time) []*Task {
	t.Helper()
	ts := make([]*Task, n)
	for i := range ts {
		ts[i] = &Task{ID: uuid.Must(uuid.NewV7()).String(), AppID: app, EventType: "e", MaxAttempts: 1, ScheduledRunTime: at}
	}
	got, err := s.InsertMany(t.Context(), ts)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// lookApps runs one dueApps on s's pool.
func lookApps(t *testing.T, s *SQLStore) []string {
	t.Helper()
	got, err := s.dueApps(t.Context(), s.db)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// lookRound runs looks on s from its cursor until the cursor wraps round
// and returns the apps they found, sorted; it fails t if a look returns an
// app twice or the looks do not wrap round within a hundred.
func lookRound(t *testing.T, s *SQLStore) []string {
	t.Helper()
	var all []string
	for looks := 0; ; looks++ {
		if looks == 100 {
			t.Fatalf("looks did not wrap round after %d: %q so far", looks, all)
		}
		got := lookApps(t, s)
		if len(slices.Compact(slices.Sorted(slices.Values(got)))) != len(got) {
			t.Fatalf("a look returned an app twice: %q (known %q)", got, s.fair.known)
		}
		all = append(all, got...)
		if s.fair.cursor == "" {
			slices.Sort(all)
			return all
		}
	}
}

// A look for the apps with due tasks goes through them in order from the
// cursor, one share each, as it did before it remembered them: apps it
// knows are found again, apps stored meanwhile between or before them are
// found, an app whose tasks are all gone is forgotten, and an app with only
// later tasks counts as none.
func TestSQLStore_DueAppsInTurn(t *testing.T) {
	t.Parallel()
	for name, open := range fairStores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			ctx := t.Context()
			later := time.Now().Add(time.Hour)
			look := func(want ...string) {
				t.Helper()
				if got := lookApps(t, s); !slices.Equal(got, want) {
					t.Errorf("dueApps: got %q, want %q", got, want)
				}
			}
			insertAt(t, s, "app_b", 2, nil)
			d := insertAt(t, s, "app_d", 1, nil)
			insertAt(t, s, "app_f", 1, &later)
			look("app_b", "app_d")
			if want := []string{"app_b", "app_d", "app_f"}; !slices.Equal(s.fair.known, want) {
				t.Errorf("known after the first look: got %q, want %q", s.fair.known, want)
			}
			look("app_b", "app_d") // round again: nothing but them

			// Apps before, between and after the known ones; app_d's task
			// claimed and done.
			insertAt(t, s, "app_a", 1, nil)
			insertAt(t, s, "app_c", 1, nil)
			insertAt(t, s, "app_e", 1, nil)
			insertAt(t, s, "app_g", 1, nil)
			if _, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE taskwheel_tasks SET state = 'completed' WHERE id = ?`), d[0].ID); err != nil {
				t.Fatal(err)
			}
			look("app_a", "app_b", "app_c", "app_e", "app_g")
			if want := []string{"app_a", "app_b", "app_c", "app_e", "app_f", "app_g"}; !slices.Equal(s.fair.known, want) {
				t.Errorf("known: got %q, want %q", s.fair.known, want)
			}

			// From a cursor in the middle: up to the end, without wrapping
			// round when some were found.
			s.fair.cursor = "app_c"
			look("app_e", "app_g")
			look("app_a", "app_b", "app_c", "app_e", "app_g")

			// At most fairMaxApps a look; the next goes on from there.
			for i := range fairMaxApps {
				insertAt(t, s, fmt.Sprintf("app_h%02d", i), 1, nil)
			}
			s.fair.cursor = ""
			got := lookApps(t, s)
			if len(got) != fairMaxApps || got[0] != "app_a" || s.fair.cursor != got[len(got)-1] {
				t.Fatalf("a look with %d apps due: got %q, cursor %q; want the first %d, cursor at the last",
					fairMaxApps+5, got, s.fair.cursor, fairMaxApps)
			}
			rest := lookApps(t, s)
			all := append(slices.Clone(got), rest...)
			if slices.Sort(all); len(all) != fairMaxApps+5 || len(slices.Compact(all)) != len(all) {
				t.Errorf("two looks: got %q and %q, want every app once", got, rest)
			}
		})
	}
}

// On PostgreSQL the entries of claimed tasks stay at the head of an app's
// range of taskwheel_tasks_app_due until a vacuum. A look walks them once,
// when it finds the app; after that, it seeks the app's tasks from the
// claim floor and reads a few pages of the index, however many entries
// lie below it.
func TestSQLStore_DueAppsSeeksPastClaimedEntries(t *testing.T) {
	t.Parallel()
	s := fairStores["Postgres"](t)
	db, ctx := s.db, t.Context()
	insertAt(t, s, "app_a", 20_000, nil)
	if _, err := db.ExecContext(ctx, `UPDATE taskwheel_tasks SET state = 'completed'`); err != nil {
		t.Fatal(err)
	}
	var floor time.Time // past the claimed tasks
	if err := db.QueryRowContext(ctx, `SELECT max(run_at) + interval '1 microsecond' FROM taskwheel_tasks`).Scan(&floor); err != nil {
		t.Fatal(err)
	}
	insertAt(t, s, "app_a", 1, nil)
	insertAt(t, s, "app_b", 1, nil)
	ctx = context.WithValue(ctx, flowClaimKey{}, &flowClaim{from: duePos{at: floor}})
	look := func() int64 {
		t.Helper()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		pages := func() int64 {
			var n int64
			if err := tx.QueryRowContext(ctx, `SELECT pg_stat_get_xact_blocks_fetched('taskwheel_tasks_app_due'::regclass)`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := pages()
		s.fair.cursor = ""
		apps, err := s.dueApps(ctx, tx)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"app_a", "app_b"}; !slices.Equal(apps, want) {
			t.Fatalf("dueApps: got %q, want %q", apps, want)
		}
		return pages() - before
	}
	first, second := look(), look()
	t.Logf("index pages read: %d by the first look, %d by the second", first, second)
	if first < 150 {
		t.Fatalf("the first look read %d pages of the index, want it to walk the 20,000 entries of claimed tasks: the test sets up nothing", first)
	}
	if second > 30 {
		t.Errorf("the second look read %d pages of the index, want a few for its three statements: it walked the entries below the floor", second)
	}
}
