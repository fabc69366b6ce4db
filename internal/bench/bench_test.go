package bench

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/postgres"
	"github.com/taskwheel/tasks/sqlite"
)

func TestLatency(t *testing.T) {
	t.Parallel()
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	tests := []struct {
		in   []time.Duration
		want Latency
	}{
		{nil, Latency{}},
		{[]time.Duration{ms(5)}, Latency{N: 1, P50: ms(5), P99: ms(5), Max: ms(5)}},
		{[]time.Duration{ms(3), ms(1), ms(2)}, Latency{N: 3, P50: ms(2), P99: ms(3), Max: ms(3)}},
	}
	for _, tt := range tests {
		if got := latency(tt.in); got != tt.want {
			t.Errorf("latency(%v): got %+v, want %+v", tt.in, got, tt.want)
		}
	}
	// 100 samples 1..100 ms: p50 is the 51st, p99 the 100th.
	var hundred []time.Duration
	for i := 100; i >= 1; i-- {
		hundred = append(hundred, ms(i))
	}
	if got, want := latency(hundred), (Latency{N: 100, P50: ms(51), P99: ms(100), Max: ms(100)}); got != want {
		t.Errorf("latency(1..100 ms): got %+v, want %+v", got, want)
	}
}

func TestStatements(t *testing.T) {
	t.Parallel()
	if got, want := batchSQLite(2), batchHeadSQLite+
		`(?2, 'bench', 'bench.noop', 'scheduled', ?3, ?1, 1, ?1, ?1), `+
		`(?4, 'bench', 'bench.noop', 'scheduled', ?5, ?1, 1, ?1, ?1)`; got != want {
		t.Errorf("batchSQLite(2):\ngot  %s\nwant %s", got, want)
	}
	if got, want := doneSQLite(3), doneHeadSQLite+"?2, ?3, ?4)"; got != want {
		t.Errorf("doneSQLite(3): got %s, want %s", got, want)
	}
}

// TestFloors checks that the floors do what they claim on each database:
// the inserts store every task, and the drain completes each once.
func TestFloors(t *testing.T) {
	t.Parallel()
	dbs := []struct {
		name string
		open func(t *testing.T) *sql.DB
		d    tasks.Dialect
	}{
		{"sqlite", func(t *testing.T) *sql.DB {
			s, err := sqlite.Open(testdb.SQLitePath(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s.DB()
		}, tasks.SQLite},
		{"postgres", func(t *testing.T) *sql.DB {
			db := testdb.Postgres(t)
			s, err := postgres.New(db)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			return db
		}, tasks.Postgres},
	}
	count := func(t *testing.T, db *sql.DB, query string) int {
		t.Helper()
		var n int
		if err := db.QueryRow(query).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const n = BatchSize + 25 // a full batch and a partial one
	for _, tt := range dbs {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			t.Run("insert", func(t *testing.T) {
				t.Parallel()
				db := tt.open(t)
				if _, err := InsertFloor(t.Context(), db, tt.d, n); err != nil {
					t.Fatal(err)
				}
				if got := count(t, db, "SELECT count(*) FROM taskwheel_tasks WHERE state = 'scheduled'"); got != n {
					t.Errorf("got %d scheduled tasks, want %d", got, n)
				}
			})
			t.Run("batch", func(t *testing.T) {
				t.Parallel()
				db := tt.open(t)
				if _, err := BatchInsertFloor(t.Context(), db, tt.d, n); err != nil {
					t.Fatal(err)
				}
				if got := count(t, db, "SELECT count(*) FROM taskwheel_tasks WHERE state = 'scheduled'"); got != n {
					t.Errorf("got %d scheduled tasks, want %d", got, n)
				}
			})
			t.Run("drain", func(t *testing.T) {
				t.Parallel()
				db := tt.open(t)
				r, err := DrainFloor(t.Context(), db, tt.d, n)
				if err != nil {
					t.Fatal(err)
				}
				if r.N != n {
					t.Errorf("got N %d, want %d", r.N, n)
				}
				q := "SELECT count(*) FROM taskwheel_tasks WHERE state = 'completed' AND attempts = 1 AND completed_at IS NOT NULL"
				if got := count(t, db, q); got != n {
					t.Errorf("got %d tasks completed once, want %d", got, n)
				}
			})
		})
	}
}

// TestBareFloors checks the bare floors on each database: they make their
// table anew each time, the inserts store every row, the drain completes
// each once, and the steady floor completes what it inserted.
func TestBareFloors(t *testing.T) {
	t.Parallel()
	dbs := map[string]func(t *testing.T) *sql.DB{
		"sqlite": func(t *testing.T) *sql.DB {
			s, err := sqlite.Open(testdb.SQLitePath(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s.DB()
		},
		"postgres": func(t *testing.T) *sql.DB { return testdb.Postgres(t) },
	}
	count := func(t *testing.T, db *sql.DB, state string) int {
		t.Helper()
		var n int
		if err := db.QueryRow("SELECT count(*) FROM " + BareTable + " WHERE state = '" + state + "'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const n = BatchSize + 25 // a full batch and a partial one
	for name, open := range dbs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db, d := open(t), tasks.SQLite
			if name == "postgres" {
				d = tasks.Postgres
			}
			ctx := t.Context()
			if _, err := BareInsertFloor(ctx, db, d, n); err != nil {
				t.Fatal(err)
			}
			if got := count(t, db, "scheduled"); got != n {
				t.Errorf("insert: got %d scheduled rows, want %d", got, n)
			}
			if _, err := BareBatchFloor(ctx, db, d, n); err != nil {
				t.Fatal(err)
			}
			if got := count(t, db, "scheduled"); got != n {
				t.Errorf("batch, on a new table: got %d scheduled rows, want %d", got, n)
			}
			if r, err := BareDrainFloor(ctx, db, d, n); err != nil || r.N != n {
				t.Fatalf("drain: got %+v, %v; want N %d", r, err, n)
			}
			if got := count(t, db, "completed"); got != n {
				t.Errorf("drain: got %d completed rows, want %d", got, n)
			}
			r, err := BareSteadyFloor(ctx, db, d, 300*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if got := count(t, db, "completed"); r.N == 0 || got != r.N {
				t.Errorf("steady: got N %d and %d completed rows, want them equal and positive", r.N, got)
			}
		})
	}
}
