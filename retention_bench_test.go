package tasks_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// purgeSeedRows is how many completed tasks BenchmarkPurgeTasks keeps in
// the table, each with two attempts.
const purgeSeedRows = 200_000

// Seed queries insert n completed tasks, finished two days ago, one a
// millisecond after the other, with IDs starting with the prefix, and two
// attempts for each task with that prefix. They build the rows in the
// database (INSERT … SELECT), not through the engine.
const (
	seedTasksSQLite = `INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data, run_at,
	attempts, max_attempts, created_at, updated_at, completed_at)
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
SELECT ?1 || i, 'app_1', 'bench', 'completed', CAST('{"n":1}' AS BLOB), ?3,
	1, 3, ?3, ?3, ?3 + i * 1000
FROM n`
	seedAttemptsSQLite = `INSERT INTO taskwheel_attempts (task_id, number, endpoint_id, started_at, status_code, response)
SELECT t.id, 1, e.id, t.completed_at, 200, 'ok'
FROM taskwheel_tasks AS t, (SELECT 'ep_a' AS id UNION ALL SELECT 'ep_b') AS e
WHERE t.id >= ?1 AND t.id < ?1 || 'z'`
	seedTasksPostgres = `INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data, run_at,
	attempts, max_attempts, created_at, updated_at, completed_at)
SELECT $1 || i, 'app_1', 'bench', 'completed', convert_to('{"n":1}', 'UTF8'), now() - interval '2 days',
	1, 3, now() - interval '2 days', now() - interval '2 days', now() - interval '2 days' + i * interval '1 millisecond'
FROM generate_series(1, $2) AS i`
	seedAttemptsPostgres = `INSERT INTO taskwheel_attempts (task_id, number, endpoint_id, started_at, status_code, response)
SELECT t.id, 1, e.id, t.completed_at, 200, 'ok'
FROM taskwheel_tasks AS t, (VALUES ('ep_a'), ('ep_b')) AS e(id)
WHERE t.id >= $1 AND t.id < $1 || 'z'`
	countCompleted = `SELECT count(*) FROM taskwheel_tasks WHERE state = 'completed'`
)

// BenchmarkPurgeTasks measures one PurgeTasks batch, which on SQLite is
// how long it holds the write lock, for batches of 100, 1,000 and 5,000
// tasks (and 500), each with two attempts, out of a table of about 200,000
// completed tasks, topped up when it falls below 180,000. ns/op is the batch;
// ns/task, the cost per task deleted. Run it with -benchtime=20x.
func BenchmarkPurgeTasks(b *testing.B) {
	for _, d := range sqlStores {
		b.Run(d.name, func(b *testing.B) {
			s := d.open(b)
			seeds := 0
			for _, batch := range []int{100, 500, 1000, 5000} {
				b.Run(fmt.Sprint(batch), func(b *testing.B) {
					ctx := context.Background()
					var have int // completed tasks in the table
					topUp := func() {
						if err := s.DB().QueryRowContext(ctx, countCompleted).Scan(&have); err != nil {
							b.Fatal(err)
						}
						if have >= purgeSeedRows*9/10 {
							return
						}
						seeds++
						prefix := fmt.Sprintf("seed-%03d-", seeds)
						seedTasks, seedAttempts := seedTasksPostgres, seedAttemptsPostgres
						args := []any{prefix, purgeSeedRows - have}
						if d.name == "SQLite" {
							seedTasks, seedAttempts = seedTasksSQLite, seedAttemptsSQLite
							args = append(args, time.Now().Add(-48*time.Hour).UnixMicro())
						}
						if _, err := s.DB().ExecContext(ctx, seedTasks, args...); err != nil {
							b.Fatal(err)
						}
						if _, err := s.DB().ExecContext(ctx, seedAttempts, prefix); err != nil {
							b.Fatal(err)
						}
						if _, err := s.DB().ExecContext(ctx, "ANALYZE"); err != nil {
							b.Fatal(err)
						}
						have = purgeSeedRows
					}
					topUp()
					deleted := 0
					b.ResetTimer()
					for range b.N {
						if have-batch < purgeSeedRows*9/10 {
							b.StopTimer()
							topUp()
							b.StartTimer()
						}
						n, err := s.PurgeTasks(ctx, tasks.StateCompleted, time.Hour, batch)
						if err != nil {
							b.Fatal(err)
						}
						if n != batch {
							b.Fatalf("PurgeTasks deleted %d tasks, want %d", n, batch)
						}
						deleted += n
						have -= n
					}
					b.StopTimer()
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(deleted, 1)), "ns/task")
				})
			}
		})
	}
}
