package tasks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Pausing and resuming a flow key: an UPDATE of the limit's paused alone,
// so that a SetLimit committed meanwhile keeps its rate, burst and
// concurrency (a dashboard's read, change and SetLimit would overwrite
// them). The row's lock (PostgreSQL) or the write lock (SQLite) orders it
// with SetLimit, and the waiting tasks' reasons follow the limit as
// updated. The token bucket is left as it is: a resumed rate limit starts
// with what it refilled meanwhile, up to its burst.
const (
	pauseLimitSQLite = `UPDATE taskwheel_limits SET paused = ?1, updated_at = ?4
WHERE app_id = ?2 AND flow_key = ?3
RETURNING rate, burst, concurrency, paused`
	pauseLimitPostgres = `UPDATE taskwheel_limits SET paused = $1, updated_at = now()
WHERE app_id = $2 AND flow_key = $3
RETURNING rate, burst, concurrency, paused`
)

// PauseLimit implements [Store].
func (s *SQLStore) PauseLimit(ctx context.Context, appID, key string, paused bool) (*Limit, error) {
	err := s.flowTx(ctx, func(tx *sql.Tx) error {
		l := Limit{AppID: appID, Key: key}
		err := tx.QueryRowContext(ctx, s.pick(pauseLimitSQLite, pauseLimitPostgres), s.args(paused, appID, key)...).
			Scan(&l.Rate, &l.Burst, &l.Concurrency, &l.Paused)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return s.waitFor(ctx, tx, &l)
	})
	if errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("tasks: pause limit %s/%s: %w", appID, key, err)
	}
	return s.GetLimit(ctx, appID, key)
}

// waitFor gives the tasks waiting for the key of l, just stored in tx, the
// reason l holds them back for, or makes them due again if it holds back
// none.
func (s *SQLStore) waitFor(ctx context.Context, tx *sql.Tx, l *Limit) error {
	var err error
	if why := l.waitReason(); why != "" {
		_, err = tx.ExecContext(ctx, s.db.Rebind(setWaitReason), why, l.AppID, l.Key, why)
	} else {
		_, err = tx.ExecContext(ctx, s.db.Rebind(releaseWaiting), l.AppID, l.Key)
	}
	return err
}
