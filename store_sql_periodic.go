package tasks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Periodic tasks.

// periodicColumns are the columns of a periodicRow.
const periodicColumns = `id, app_id, spec, time_zone, event_type, data, status, missed,
	next_run_at, last_run_at, last_task_id, created_at, updated_at`

// periodicRow is a row of taskwheel_periodic. Its columns scan NULL, for
// DuePeriodics' outer join that returns the clock alone when nothing is due.
type periodicRow struct {
	ID         sql.NullString `db:"id"`
	AppID      sql.NullString `db:"app_id"`
	Spec       sql.NullString `db:"spec"`
	TimeZone   sql.NullString `db:"time_zone"`
	EventType  sql.NullString `db:"event_type"`
	Data       []byte         `db:"data"`
	Status     sql.NullString `db:"status"`
	Missed     sql.NullString `db:"missed"`
	NextRunAt  sqlTime        `db:"next_run_at"`
	LastRunAt  sqlTime        `db:"last_run_at"`
	LastTaskID *string        `db:"last_task_id"`
	CreatedAt  sqlTime        `db:"created_at"`
	UpdatedAt  sqlTime        `db:"updated_at"`
}

func (r *periodicRow) periodic() *PeriodicTask {
	return &PeriodicTask{
		ID:         r.ID.String,
		AppID:      r.AppID.String,
		Spec:       r.Spec.String,
		TimeZone:   r.TimeZone.String,
		EventType:  r.EventType.String,
		Data:       r.Data,
		Status:     PeriodicStatus(r.Status.String),
		Missed:     MissedPolicy(r.Missed.String),
		NextRunAt:  r.NextRunAt.ptr(),
		LastRunAt:  r.LastRunAt.ptr(),
		LastTaskID: r.LastTaskID,
		CreatedAt:  r.CreatedAt.t,
		UpdatedAt:  r.UpdatedAt.t,
	}
}

// queryPeriodics runs query, which returns periodicColumns.
func queryPeriodics(ctx context.Context, q sqlx.QueryerContext, query string, args ...any) ([]*PeriodicTask, error) {
	var rs []periodicRow
	if err := sqlx.SelectContext(ctx, q, &rs, query, args...); err != nil {
		return nil, err
	}
	ps := make([]*PeriodicTask, len(rs))
	for i := range rs {
		ps[i] = rs[i].periodic()
	}
	return ps, nil
}

// queryPeriodic runs query, which returns periodicColumns of at most one
// periodic task, and returns ErrNotFound when it returns none.
func queryPeriodic(ctx context.Context, q sqlx.QueryerContext, query string, args ...any) (*PeriodicTask, error) {
	ps, err := queryPeriodics(ctx, q, query, args...)
	switch {
	case err != nil:
		return nil, err
	case len(ps) == 0:
		return nil, ErrNotFound
	}
	return ps[0], nil
}

// Periodic task queries. Inserts take the ID, the app, the spec, the time
// zone, the event type, the data, the status, the missed policy and the next
// slot; updates, like the endpoint's, take the ID and the UpdatedAt they
// compare and set, then the same fields but the app.
const (
	insertPeriodicSQLite = `INSERT INTO taskwheel_periodic (id, app_id, spec, time_zone, event_type, data,
	status, missed, next_run_at, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
ON CONFLICT DO NOTHING
RETURNING ` + periodicColumns
	insertPeriodicPostgres = `INSERT INTO taskwheel_periodic (id, app_id, spec, time_zone, event_type, data,
	status, missed, next_run_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), now())
ON CONFLICT DO NOTHING
RETURNING ` + periodicColumns
	getPeriodic          = `SELECT ` + periodicColumns + ` FROM taskwheel_periodic WHERE id = ?`
	listPeriodics        = `SELECT ` + periodicColumns + ` FROM taskwheel_periodic WHERE app_id = ? ORDER BY created_at, id`
	updatePeriodicSQLite = `UPDATE taskwheel_periodic SET spec = ?3, time_zone = ?4, event_type = ?5, data = ?6,
	status = ?7, missed = ?8, next_run_at = ?9, updated_at = max(?10, updated_at + 1)
WHERE id = ?1 AND updated_at = ?2
RETURNING ` + periodicColumns
	updatePeriodicPostgres = `UPDATE taskwheel_periodic SET spec = $3, time_zone = $4, event_type = $5, data = $6,
	status = $7, missed = $8, next_run_at = $9, updated_at = greatest(now(), updated_at + interval '1 microsecond')
WHERE id = $1 AND updated_at = $2
RETURNING ` + periodicColumns
	periodicExists = `SELECT count(*) FROM taskwheel_periodic WHERE id = ?`
	deletePeriodic = `DELETE FROM taskwheel_periodic WHERE id = ?`
)

// InsertPeriodic implements [Store].
func (s *SQLStore) InsertPeriodic(ctx context.Context, p *PeriodicTask) (*PeriodicTask, error) {
	got, err := queryPeriodic(ctx, s.db, s.pick(insertPeriodicSQLite, insertPeriodicPostgres), s.args(p.ID, p.AppID,
		s.text(p.Spec), s.text(p.TimeZone), s.text(p.EventType), []byte(p.Data), string(p.Status),
		string(p.Missed), s.expiresArg(p.NextRunAt))...)
	switch {
	case errors.Is(err, ErrNotFound): // the ID's unique constraint turned it away
		return nil, invalid("id", "periodic task %s exists", p.ID)
	case err != nil:
		return nil, fmt.Errorf("tasks: insert periodic task %s: %w", p.ID, err)
	}
	return got, nil
}

// GetPeriodic implements [Store].
func (s *SQLStore) GetPeriodic(ctx context.Context, id string) (*PeriodicTask, error) {
	if !s.storable(id) {
		return nil, ErrNotFound
	}
	p, err := queryPeriodic(ctx, s.read, s.read.Rebind(getPeriodic), id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("tasks: get periodic task %s: %w", id, err)
	}
	return p, err
}

// ListPeriodics implements [Store].
func (s *SQLStore) ListPeriodics(ctx context.Context, appID string) ([]*PeriodicTask, error) {
	if !s.storable(appID) {
		return nil, nil // no periodic task has it
	}
	ps, err := queryPeriodics(ctx, s.read, s.read.Rebind(listPeriodics), appID)
	if err != nil {
		return nil, fmt.Errorf("tasks: list periodic tasks of %s: %w", appID, err)
	}
	return ps, nil
}

// UpdatePeriodic implements [Store].
func (s *SQLStore) UpdatePeriodic(ctx context.Context, p *PeriodicTask) (*PeriodicTask, error) {
	if !s.storable(p.ID) {
		return nil, ErrNotFound
	}
	got, err := queryPeriodic(ctx, s.db, s.pick(updatePeriodicSQLite, updatePeriodicPostgres), s.args(p.ID,
		s.timeArg(p.UpdatedAt), s.text(p.Spec), s.text(p.TimeZone), s.text(p.EventType), []byte(p.Data),
		string(p.Status), string(p.Missed), s.expiresArg(p.NextRunAt))...)
	if errors.Is(err, ErrNotFound) {
		err = s.conflictOrNotFound(ctx, periodicExists, p.ID)
	}
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConflict) {
		return nil, fmt.Errorf("tasks: update periodic task %s: %w", p.ID, err)
	}
	return got, err
}

// DeletePeriodic implements [Store].
func (s *SQLStore) DeletePeriodic(ctx context.Context, id string) error {
	if !s.storable(id) {
		return ErrNotFound
	}
	n, err := exec(ctx, s.db, s.db.Rebind(deletePeriodic), id)
	switch {
	case err != nil:
		return fmt.Errorf("tasks: delete periodic task %s: %w", id, err)
	case n == 0:
		return ErrNotFound
	}
	return nil
}

// DuePeriodics queries take the window (microseconds) and the limit, and
// return the clock with each periodic task due in the window, or alone if
// none is.
const (
	duePeriodicsSQLite = `SELECT clock.now AS clock_now, due.*
FROM (SELECT ?3 AS now) AS clock
LEFT JOIN (
	SELECT ` + periodicColumns + ` FROM taskwheel_periodic
	WHERE status = 'active' AND next_run_at <= ?3 + ?1
	ORDER BY next_run_at, id
	LIMIT ?2) AS due ON true
ORDER BY due.next_run_at, due.id`
	duePeriodicsPostgres = `SELECT clock.now AS clock_now, due.*
FROM (SELECT now() AS now) AS clock
LEFT JOIN LATERAL (
	SELECT ` + periodicColumns + ` FROM taskwheel_periodic
	WHERE status = 'active' AND next_run_at <= clock.now + $1 * interval '1 microsecond'
	ORDER BY next_run_at, id
	LIMIT $2) AS due ON true
ORDER BY due.next_run_at, due.id`
)

// DuePeriodics implements [Store].
func (s *SQLStore) DuePeriodics(ctx context.Context, within time.Duration, limit int) (time.Time, []*PeriodicTask, error) {
	var rows []struct {
		Now sqlTime `db:"clock_now"`
		periodicRow
	}
	err := sqlx.SelectContext(ctx, s.read, &rows, s.pick(duePeriodicsSQLite, duePeriodicsPostgres),
		s.args(within.Microseconds(), max(limit, 0))...)
	if err == nil && len(rows) == 0 {
		err = sql.ErrNoRows // never: the query returns the clock at least
	}
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("tasks: list due periodic tasks: %w", err)
	}
	var due []*PeriodicTask
	for i := range rows {
		if rows[i].ID.Valid {
			due = append(due, rows[i].periodic())
		}
	}
	return rows[0].Now.t, due, nil
}

// AdvancePeriodic queries take the ID, the slot to move from (the fence),
// the slot to move to, the ID of the task enqueued, "" for none, and the
// slot that task is due at.
const (
	advancePeriodicSQLite = `UPDATE taskwheel_periodic SET next_run_at = ?3,
	last_run_at = CASE WHEN ?4 = '' THEN last_run_at ELSE ?5 END,
	last_task_id = CASE WHEN ?4 = '' THEN last_task_id ELSE ?4 END
WHERE id = ?1 AND next_run_at = ?2`
	advancePeriodicPostgres = `UPDATE taskwheel_periodic SET next_run_at = $3,
	last_run_at = CASE WHEN $4::text = '' THEN last_run_at ELSE $5::timestamptz END,
	last_task_id = CASE WHEN $4::text = '' THEN last_task_id ELSE $4::text END
WHERE id = $1 AND next_run_at = $2::timestamptz`
)

// AdvancePeriodic implements [Store]. Its compare and set is one UPDATE:
// the database serializes concurrent ones on the row.
func (s *SQLStore) AdvancePeriodic(ctx context.Context, id string, from, to, lastRunAt time.Time, lastTaskID string) (bool, error) {
	if !s.storable(id) {
		return false, nil
	}
	n, err := exec(ctx, s.db, s.pick(advancePeriodicSQLite, advancePeriodicPostgres),
		id, s.timeArg(from), s.timeArg(to), s.text(lastTaskID), s.timeArg(lastRunAt))
	if err != nil {
		return false, fmt.Errorf("tasks: advance periodic task %s: %w", id, err)
	}
	return n == 1, nil
}
