package tasks_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/bench"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/postgres"
	"github.com/taskwheel/tasks/sqlite"
)

// The benchmarks here wrap workloads of package internal/bench, which
// describes them, for go test -bench; cmd/tasksbench runs them all, with
// their floors, on every store.

// BenchmarkLateness is W5 with 1,000 tasks spread evenly over two
// seconds, the first a second ahead, on an idle engine: p50, p99 and max
// of (start − scheduled time), in milliseconds, and how many started
// early. postgres-cross enqueues through another engine with its own
// connection pool, as another process would: the worker learns of the
// tasks through LISTEN/NOTIFY. Run it with -benchtime=1x.
func BenchmarkLateness(b *testing.B) {
	for _, s := range testStores {
		b.Run(s.name, func(b *testing.B) {
			store := s.open(b)
			benchLateness(b, store, store)
		})
	}
	b.Run("postgres-cross", func(b *testing.B) {
		stores := postgresStores(b, 2)
		benchLateness(b, stores[0], stores[1])
	})
}

func benchLateness(b *testing.B, producer, worker tasks.Store) {
	var r bench.LatenessResult
	for b.Loop() {
		var err error
		if r, err = bench.Lateness(b.Context(), producer, worker, 1000, time.Second, 3*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(r.Late.P50), "p50-ms")
	b.ReportMetric(ms(r.Late.P99), "p99-ms")
	b.ReportMetric(ms(r.Late.Max), "max-ms")
	b.ReportMetric(float64(r.Early), "early")
}

// BenchmarkDrain is W3 with b.N tasks: end-to-end tasks/s from Start until
// every task is completed, each claimed, run, and its outcome and attempt
// stored. On PostgreSQL it also runs three engines, each with its own
// connection pool as three processes would have.
func BenchmarkDrain(b *testing.B) {
	for _, s := range testStores {
		b.Run(s.name, func(b *testing.B) { benchDrain(b, s.open(b)) })
	}
	b.Run("postgres-3-engines", func(b *testing.B) { benchDrain(b, postgresStores(b, 3)...) })
}

func benchDrain(b *testing.B, stores ...tasks.Store) {
	r, err := bench.Drain(b.Context(), b.N, stores...)
	if err != nil {
		b.Fatal(err)
	}
	reportRate(b, r)
}

// BenchmarkEnqueueMany is W2 with b.N batches: Engine.EnqueueMany of
// bench.BatchSize no-op tasks per op, from one goroutine, on an engine
// that is not started. With -benchmem, allocs/op and B/op are per batch:
// divide by 1,000 for a task's.
func BenchmarkEnqueueMany(b *testing.B) {
	for _, s := range testStores {
		b.Run(s.name, func(b *testing.B) {
			eng, err := tasks.NewEngine(s.open(b), nil)
			if err != nil {
				b.Fatal(err)
			}
			batch := make([]tasks.NewTask, bench.BatchSize)
			for i := range batch {
				batch[i] = tasks.NewTask{AppID: "bench", EventType: "bench.noop"}
			}
			for b.Loop() {
				if _, err := eng.EnqueueMany(b.Context(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "tasks/s")
		})
	}
}

// BenchmarkFloor is W3's raw-SQL floor with b.N tasks, which
// BenchmarkDrain is compared with: the bare statements any durable queue
// needs per task, on the same tables, with no library around them. The
// tasks are inserted in batches (not timed), then claimed ten at a time
// (UPDATE … RETURNING over a SKIP LOCKED subquery on PostgreSQL) and each
// ten marked done in one statement, by 16 goroutines as the engine's 16
// workers.
func BenchmarkFloor(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		s, err := sqlite.Open(testdb.SQLitePath(b), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchFloor(b, s.DB(), tasks.SQLite)
	})
	b.Run("postgres", func(b *testing.B) {
		db := testdb.Postgres(b)
		s, err := postgres.New(db)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Migrate(b.Context()); err != nil {
			b.Fatal(err)
		}
		db.SetMaxOpenConns(bench.Workers)
		benchFloor(b, db, tasks.Postgres)
	})
}

func benchFloor(b *testing.B, db *sql.DB, d tasks.Dialect) {
	r, err := bench.DrainFloor(b.Context(), db, d, b.N)
	if err != nil {
		b.Fatal(err)
	}
	reportRate(b, r)
}

// reportRate reports r as tasks/s, and its time per task as ns/op in
// place of the benchmark's, which counts the untimed setup too.
func reportRate(b *testing.B, r bench.Rate) {
	b.ReportMetric(r.PerSecond(), "tasks/s")
	b.ReportMetric(float64(r.Elapsed.Nanoseconds())/float64(max(r.N, 1)), "ns/op")
}
