package tasks

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// countLive queries count the store's live tasks, of every app, on the
// partial indexes that hold them (taskwheel_tasks_due, taskwheel_tasks_lease),
// as CountTasks counts an app's: the cost is that of the live tasks, not of
// the history.
const (
	countLiveSQLite = `SELECT state, count(*) AS n FROM taskwheel_tasks INDEXED BY taskwheel_tasks_due
WHERE state IN ('scheduled', 'retrying')
GROUP BY state
UNION ALL SELECT 'running', count(*) FROM taskwheel_tasks INDEXED BY taskwheel_tasks_lease
	WHERE state = 'running'`
	countLivePostgres = `SELECT state, count(*) AS n FROM taskwheel_tasks
WHERE state IN ('scheduled', 'retrying')
GROUP BY state
UNION ALL SELECT 'running', count(*) FROM taskwheel_tasks
	WHERE state = 'running'`
)

// countLive implements liveCounter, for the gauge of live tasks.
func (s *SQLStore) countLive(ctx context.Context) (map[State]int, error) {
	var rows []struct {
		State State `db:"state"`
		N     int   `db:"n"`
	}
	if err := sqlx.SelectContext(ctx, s.read, &rows, s.pick(countLiveSQLite, countLivePostgres)); err != nil {
		return nil, fmt.Errorf("tasks: count live tasks: %w", err)
	}
	counts := make(map[State]int, len(rows))
	for _, r := range rows {
		counts[r.State] += r.N
	}
	return counts, nil
}
