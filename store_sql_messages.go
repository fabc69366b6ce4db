package tasks

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// listDeliveryAttempts reads a page of an app's deliveries, newest first,
// down the index taskwheel_attempts_deliveries: its ORDER BY is the
// index's, so the database reads no more of it than the page, the rows it
// skips (offset) and the other apps' deliveries between them, each looked
// up in the tasks by the task's key. CROSS JOIN makes SQLite walk the
// attempts in the outer loop (it would otherwise read all the app's tasks
// and sort their attempts); PostgreSQL plans it as any inner join, and
// walks the index too unless an offset deep into a small app's share
// makes sorting that share cheaper.
const listDeliveryAttempts = `SELECT a.task_id, a.number, a.endpoint_id, a.started_at, a.duration,
	a.status_code, a.response, a.error
FROM taskwheel_attempts a CROSS JOIN taskwheel_tasks t
WHERE t.id = a.task_id AND a.endpoint_id <> '' AND t.app_id = ?
ORDER BY a.started_at DESC, a.task_id DESC, a.number DESC, a.endpoint_id DESC
LIMIT ? OFFSET ?`

// ListDeliveryAttempts implements [Store].
func (s *SQLStore) ListDeliveryAttempts(ctx context.Context, appID string, offset, limit int) ([]Attempt, error) {
	if err := deliveryParams(offset, limit); err != nil {
		return nil, err
	}
	if !s.storable(appID) {
		return nil, nil // no task has it
	}
	var rows []attemptRow
	err := s.retryLost(ctx, s.read, func(q dbOrConn) error {
		rows = nil
		return sqlx.SelectContext(ctx, q, &rows, s.read.Rebind(listDeliveryAttempts), appID, limit, offset)
	})
	if err != nil {
		return nil, fmt.Errorf("tasks: list delivery attempts of %s: %w", appID, err)
	}
	as := make([]Attempt, len(rows))
	for i, r := range rows {
		as[i] = r.attempt()
	}
	return as, nil
}
