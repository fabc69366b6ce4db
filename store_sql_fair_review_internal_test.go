package tasks

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Known apps whose tasks all went between two looks must not hide the apps
// that have due tasks: before known apps, a look walked past apps with no
// pending task in the one statement that found the next app; each known app
// found gone now costs a probe of the look's 2×fairMaxApps.
func TestReview_DueAppsManyKnownAppsGone(t *testing.T) {
	t.Parallel()
	for name, open := range fairStores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			ctx := t.Context()
			n := 2*fairMaxApps + 8
			for i := range n {
				insertAt(t, s, fmt.Sprintf("a%03d", i), 1, nil)
			}
			insertAt(t, s, "b1", 1, nil)
			insertAt(t, s, "b2", 1, nil)
			for range 3 { // go round them all, so that they are known
				lookApps(t, s)
			}
			if len(s.fair.known) != n+2 {
				t.Fatalf("known: %d apps, want %d", len(s.fair.known), n+2)
			}
			// The a… apps' tasks claimed and done.
			if _, err := s.db.ExecContext(ctx, `UPDATE taskwheel_tasks SET state = 'completed' WHERE app_id LIKE 'a%'`); err != nil {
				t.Fatal(err)
			}
			s.fair.cursor = ""
			if got, want := lookApps(t, s), []string{"b1", "b2"}; !slices.Equal(got, want) {
				t.Errorf("dueApps after %d known apps went: got %q, want %q", n, got, want)
			}
		})
	}
}

// Apps whose IDs sort differently by bytes and by a locale (upper case,
// punctuation, non-ASCII) are each found once per round, whether known or
// not: the database's order (COLLATE "C", SQLite's BINARY) must be Go's.
func TestReview_DueAppsOddAppIDs(t *testing.T) {
	t.Parallel()
	ids := []string{"B", "a", "a-", "a.", "a_", "aB", "ab", "z", "~", "é", "Ω", "\u00a0x", "a\x7f", "0", ":"}
	for name, open := range fairStores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			for _, id := range ids {
				insertAt(t, s, id, 1, nil)
			}
			want := slices.Clone(ids)
			slices.Sort(want)
			for round := range 4 {
				if got := lookRound(t, s); !slices.Equal(got, want) {
					t.Fatalf("round %d: got %q, want each of %q once", round, got, want)
				}
				if !slices.IsSorted(s.fair.known) {
					t.Fatalf("known not sorted: %q", s.fair.known)
				}
				if round == 1 {
					// Some known apps go, others come between them.
					if _, err := s.db.ExecContext(t.Context(), s.db.Rebind(`UPDATE taskwheel_tasks SET state = 'completed' WHERE app_id IN (?, ?, ?)`), "a.", "é", "z"); err != nil {
						t.Fatal(err)
					}
					want = slices.DeleteFunc(want, func(id string) bool { return id == "a." || id == "é" || id == "z" })
					for _, id := range []string{"a/", "aA", "é~", "zz", "A"} {
						insertAt(t, s, id, 1, nil)
						want = append(want, id)
					}
					slices.Sort(want)
				}
			}
		})
	}
}

// More than fairKnownApps apps: the store remembers fairKnownApps of them
// and every app with due tasks is still found once a round.
func TestReview_DueAppsMoreAppsThanKnown(t *testing.T) {
	t.Parallel()
	for name, open := range fairStores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			later := time.Now().Add(time.Hour)
			var want []string
			for i := range fairKnownApps + 40 {
				id := fmt.Sprintf("app%04d", i)
				if i%3 == 0 {
					insertAt(t, s, id, 1, &later) // only later tasks
					continue
				}
				insertAt(t, s, id, 1, nil)
				want = append(want, id)
			}
			for round := range 3 {
				if got := lookRound(t, s); !slices.Equal(got, want) {
					t.Fatalf("round %d: got %d apps, want each of %d once", round, len(got), len(want))
				}
				if len(s.fair.known) > fairKnownApps {
					t.Fatalf("known: %d apps, more than %d", len(s.fair.known), fairKnownApps)
				}
			}
		})
	}
}

// Several claims look at once on one store (run with -race): each look
// returns apps with due tasks, in order, none twice, and the store's memory
// stays sorted, bounded and free of duplicates.
func TestReview_DueAppsConcurrentLooks(t *testing.T) {
	t.Parallel()
	for name, open := range fairStores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			var ids []string
			for i := range 40 {
				id := fmt.Sprintf("app%02d", i)
				insertAt(t, s, id, 1, nil)
				ids = append(ids, id)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 25 {
						if g == 0 && i%5 == 0 { // apps come and go meanwhile
							// Not insertAt: t.Fatal belongs to the test's goroutine.
							tk := &Task{ID: uuid.Must(uuid.NewV7()).String(), AppID: fmt.Sprintf("new%02d", i), EventType: "e", MaxAttempts: 1}
							if _, err := s.Insert(context.Background(), tk); err != nil {
								errs <- err
								return
							}
						}
						got, err := s.dueApps(context.Background(), s.db)
						if err != nil {
							errs <- err
							return
						}
						if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) || len(got) > fairMaxApps {
							errs <- fmt.Errorf("look %q: not sorted, repeated or too many", got)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			s.fair.mu.Lock()
			known := slices.Clone(s.fair.known)
			s.fair.mu.Unlock()
			if !slices.IsSorted(known) || len(slices.Compact(slices.Clone(known))) != len(known) {
				t.Errorf("known: %q", known)
			}
		})
	}
}

// reviewPlan returns PostgreSQL's plan, run, of query with args: with a
// generic plan (as a prepared statement reused past five runs may get), or
// a custom one. Each arg is a string or a time.Time.
func reviewPlan(t *testing.T, s *SQLStore, query string, generic bool, args ...any) string {
	t.Helper()
	ctx := t.Context()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mode := "force_custom_plan"
	if generic {
		mode = "force_generic_plan"
	}
	if _, err := conn.ExecContext(ctx, `SET plan_cache_mode = `+mode); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), `RESET plan_cache_mode`)
	if _, err := conn.ExecContext(ctx, `PREPARE review_known AS `+s.db.Rebind(query)); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), `DEALLOCATE review_known`)
	lit := make([]string, len(args)) // EXPLAIN EXECUTE takes no parameters
	for i, a := range args {
		if at, ok := a.(time.Time); ok {
			a = at.Format(time.RFC3339Nano)
		}
		lit[i] = "'" + strings.ReplaceAll(a.(string), "'", "''") + "'"
	}
	rows, err := conn.QueryContext(ctx, `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE review_known(`+strings.Join(lit, ", ")+`)`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		b.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// On PostgreSQL, the known arm of a look reads taskwheel_tasks_app_due from
// the floor, never taskwheel_tasks_due through the other apps' backlog,
// with statistics or without, with a generic plan or a custom one.
func TestReview_DueAppsKnownArmPlan(t *testing.T) {
	t.Parallel()
	s := fairStores["Postgres"](t)
	db, ctx := s.db, t.Context()
	// A big backlog of one app (app_z) due from the floor on, a small one
	// of app_a, and claimed entries of app_a below the floor.
	insertAt(t, s, "app_a", 5_000, nil)
	if _, err := db.ExecContext(ctx, `UPDATE taskwheel_tasks SET state = 'completed'`); err != nil {
		t.Fatal(err)
	}
	var floor time.Time
	if err := db.QueryRowContext(ctx, `SELECT max(run_at) + interval '1 microsecond' FROM taskwheel_tasks`).Scan(&floor); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		insertAt(t, s, "app_z", 5_000, nil)
	}
	insertAt(t, s, "app_a", 3, nil)
	floorArg := floorAt(Postgres, duePos{at: floor})
	check := func(stage string) {
		t.Helper()
		for _, c := range []struct {
			name string
			args []any
		}{
			{"known app_a", []any{"", "app_a", floorArg, "app_a", "app_a", floorArg}},
			{"known app_z after app_a", []any{"app_a", "app_z", floorArg, "app_z", "app_z", floorArg}},
			{"from -infinity", []any{"", "app_a", "-infinity", "app_a", "app_a", "-infinity"}},
		} {
			for _, generic := range []bool{false, true} {
				plan := reviewPlan(t, s, fairNextKnownApp, generic, c.args...)
				t.Logf("%s, %s, generic %v:\n%s", stage, c.name, generic, plan)
				if strings.Contains(plan, "taskwheel_tasks_due ") || strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Bitmap") {
					t.Errorf("%s, %s, generic %v: the plan reads other than taskwheel_tasks_app_due in order:\n%s", stage, c.name, generic, plan)
				}
			}
		}
	}
	check("without statistics")
	if _, err := db.ExecContext(ctx, `ANALYZE taskwheel_tasks`); err != nil {
		t.Fatal(err)
	}
	check("after ANALYZE")
}

// On SQLite, both parts of a look's statement read taskwheel_tasks_app_due
// by a range on app_id (SQLite seeks by no column after a range; run_at is
// checked on the index entries, of pending tasks only, since SQLite leaves
// no dead entries), each a co-routine of one row, with no sort but of that
// row and no scan of the table.
func TestReview_DueAppsSQLitePlan(t *testing.T) {
	t.Parallel()
	s := fairStores["SQLite"](t)
	insertAt(t, s, "app_a", 200, nil)
	insertAt(t, s, "app_z", 2000, nil)
	if _, err := s.db.ExecContext(t.Context(), `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	floor := floorAt(SQLite, duePos{at: time.Now().Add(-time.Hour)})
	rows, err := s.db.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+fairNextKnownApp, "app_a", "app_z", floor, "app_z", "app_z", floor)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("plan:\n%s", strings.Join(plan, "\n"))
	var seeks int
	for i, line := range plan {
		// A sort of a part's one row, for the whole's ORDER BY, costs nothing.
		sortsPart := i > 0 && (plan[i-1] == "SCAN unknown" || plan[i-1] == "SCAN known")
		if (strings.Contains(line, "TEMP B-TREE") && !sortsPart) || (strings.HasPrefix(line, "SCAN") && line != "SCAN unknown" && line != "SCAN known") {
			t.Errorf("plan step %q", line)
		}
		if strings.Contains(line, "SEARCH taskwheel_tasks USING INDEX taskwheel_tasks_app_due (app_id>? AND app_id<?") {
			seeks++
		}
	}
	if seeks != 2 {
		t.Errorf("want both parts to seek taskwheel_tasks_app_due by range")
	}
}

// App IDs whose order by the bytes of the database's encoding is not Go's
// order of their UTF-8: in a WIN1252 database read through client_encoding
// UTF8, "€" (0x80) sorts before "é" (0xE9), after it in UTF-8. The store's
// memory of the apps must not make a look return an app twice or miss one.
// It passes trivially in a UTF8 database (or with pgx's default
// client_encoding, the database's, which stores Go's bytes as they are):
// run it with TASKS_TEST_POSTGRES_URL naming a database created with
// ENCODING 'WIN1252' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0, with
// &client_encoding=UTF8. Before rememberApps kept to ASCII IDs, a look
// there returned "€" and "Œ" eight times each, and never "é" nor "ü".
func TestReview_DueAppsServerEncodingOrder(t *testing.T) {
	t.Parallel()
	s := fairStores["Postgres"](t)
	var enc string
	if err := s.db.QueryRowContext(t.Context(), `SELECT current_setting('server_encoding') || ' client ' || current_setting('client_encoding')`).Scan(&enc); err != nil {
		t.Fatal(err)
	}
	t.Logf("server_encoding %s", enc)
	ids := []string{"a", "z", "é", "€", "ü", "Œ", "~", "a€", "aé", "a~", "zéa", "z€"}
	for _, id := range ids {
		insertAt(t, s, id, 1, nil)
	}
	var order string
	if err := s.db.QueryRowContext(t.Context(), `SELECT string_agg(app_id || '=' || encode(convert_to(app_id, current_setting('server_encoding')), 'hex'), ' ' ORDER BY app_id) FROM taskwheel_tasks`).Scan(&order); err != nil {
		t.Fatal(err)
	}
	t.Logf("the database's order: %s", order)
	want := slices.Clone(ids)
	slices.Sort(want)
	for round := range 3 {
		got := lookRound(t, s)
		t.Logf("round %d: %q, known %q", round, got, s.fair.known)
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: got %q, want each of %q once", round, got, want)
		}
	}
}
