package tasks_test

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
)

// BenchmarkLateness schedules 1,000 tasks spread evenly over two seconds,
// the first a second ahead, on an idle engine and reports how late they started: p50, p99 and max of
// (start − scheduled time), in milliseconds, and how many started early.
// postgres-cross enqueues through another engine with its own connection
// pool, as another process would: the worker learns of the tasks through
// LISTEN/NOTIFY. Run it with -benchtime=1x.
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

func benchLateness(b *testing.B, producerStore, workerStore tasks.Store) {
	const n = 1000
	var mu sync.Mutex
	var late []time.Duration
	var early atomic.Int32
	all := make(chan struct{})
	worker, err := tasks.NewEngine(workerStore, nil)
	if err != nil {
		b.Fatal(err)
	}
	worker.Register("x", func(ctx context.Context, t *tasks.Task) error {
		d := time.Since(*t.ScheduledRunTime)
		if d < 0 {
			early.Add(1)
		}
		mu.Lock()
		defer mu.Unlock()
		late = append(late, d)
		if len(late)%n == 0 {
			all <- struct{}{}
		}
		return nil
	})
	producer := worker
	if producerStore != workerStore {
		if producer, err = tasks.NewEngine(producerStore, nil); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	if err := worker.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer worker.Stop(ctx)
	for b.Loop() {
		// The first is due once all are stored: the engine is idle then.
		base := time.Now().Add(time.Second)
		for i := range n {
			at := base.Add(time.Duration(i) * 2 * time.Second / n)
			if _, err := producer.Enqueue(ctx, tasks.NewTask{AppID: "bench", EventType: "x", RunAt: at}); err != nil {
				b.Fatal(err)
			}
		}
		<-all
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(late)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(late[len(late)/2]), "p50-ms")
	b.ReportMetric(ms(late[len(late)*99/100]), "p99-ms")
	b.ReportMetric(ms(late[len(late)-1]), "max-ms")
	b.ReportMetric(float64(early.Load()), "early")
}

// BenchmarkDrain enqueues b.N no-op tasks with the workers stopped, then
// starts them and measures until every task is completed: end-to-end
// tasks/s, each task claimed, run, and its outcome and attempt stored. On
// PostgreSQL it also runs three engines, each with its own connection pool
// as three processes would have.
func BenchmarkDrain(b *testing.B) {
	for _, s := range testStores {
		b.Run(s.name, func(b *testing.B) { benchDrain(b, s.open(b)) })
	}
	b.Run("postgres-3-engines", func(b *testing.B) { benchDrain(b, postgresStores(b, 3)...) })
}

func benchDrain(b *testing.B, stores ...tasks.Store) {
	var done atomic.Int64
	all := make(chan struct{})
	n := int64(b.N)
	noop := func(ctx context.Context, t *tasks.Task) error {
		if done.Add(1) == n {
			close(all)
		}
		return nil
	}
	var engines []*tasks.Engine
	for _, store := range stores {
		e, err := tasks.NewEngine(store, &tasks.Config{Workers: 16})
		if err != nil {
			b.Fatal(err)
		}
		e.Register("noop", noop)
		engines = append(engines, e)
	}
	ctx := context.Background()
	for range n {
		if _, err := engines[0].Enqueue(ctx, tasks.NewTask{AppID: "bench", EventType: "noop"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for _, e := range engines {
		if err := e.Start(ctx); err != nil {
			b.Fatal(err)
		}
	}
	<-all
	for _, e := range engines {
		if err := e.Stop(ctx); err != nil { // includes storing the last outcomes
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkFloor measures the raw-SQL floor that BenchmarkDrain is compared
// with: the bare statements any durable queue needs per task, on the same
// table and indexes, with no library around them. b.N tasks are inserted one
// statement each (not timed), then claimed in batches of 10 (UPDATE …
// RETURNING over a SKIP LOCKED subquery on PostgreSQL) and marked done one
// statement each, by 16 goroutines as the engine's 16 workers.
func BenchmarkFloor(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		s, err := tasks.OpenSQLite(testdb.SQLitePath(b))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchFloor(b, s.DB(), tasks.SQLite)
	})
	b.Run("postgres", func(b *testing.B) {
		db := testdb.Postgres(b)
		s, err := tasks.NewSQLStore(db, tasks.Postgres)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Migrate(context.Background()); err != nil {
			b.Fatal(err)
		}
		db.SetMaxOpenConns(16)
		benchFloor(b, db, tasks.Postgres)
	})
}

func benchFloor(b *testing.B, db *sql.DB, d tasks.Dialect) {
	ctx := context.Background()
	insert := `INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data, run_at, max_attempts, created_at, updated_at)
VALUES ($1, 'bench', 'noop', 'scheduled', $3, $2, 1, $2, $2)`
	claim := `UPDATE taskwheel_tasks SET state = 'running', attempts = attempts + 1
WHERE id IN (SELECT id FROM taskwheel_tasks WHERE state IN ('scheduled', 'retrying') AND run_at <= $1
	ORDER BY run_at LIMIT 10 FOR UPDATE SKIP LOCKED)
RETURNING id`
	done := `UPDATE taskwheel_tasks SET state = 'completed', completed_at = $2 WHERE id = $1`
	now := func() any { return time.Now().UTC() }
	if d == tasks.SQLite {
		// SQLite numbers parameters ?1, ?2 (its $1 is a name).
		insert, done = strings.ReplaceAll(insert, "$", "?"), strings.ReplaceAll(done, "$", "?")
		claim = strings.ReplaceAll(strings.Replace(claim, " FOR UPDATE SKIP LOCKED", "", 1), "$", "?")
		now = func() any { return time.Now().UnixMicro() }
	}
	for range b.N {
		if _, err := db.ExecContext(ctx, insert, uuid.NewString(), now(), []byte("{}")); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	var completed atomic.Int64
	for range 16 {
		wg.Go(func() {
			for {
				rows, err := db.QueryContext(ctx, claim, now())
				if err != nil {
					b.Error(err)
					return
				}
				var ids []string
				for rows.Next() {
					var id string
					if err := rows.Scan(&id); err != nil {
						b.Error(err)
					}
					ids = append(ids, id)
				}
				rows.Close()
				if len(ids) == 0 {
					return
				}
				for _, id := range ids {
					if _, err := db.ExecContext(ctx, done, id, now()); err != nil {
						b.Error(err)
						return
					}
					completed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if n := completed.Load(); n != int64(b.N) {
		b.Fatalf("completed %d of %d", n, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}
