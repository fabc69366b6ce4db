package tasks

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Attempt history.

// attemptColumns are the columns of an attempt, in the order insertAttempts
// gives them.
const attemptColumns = `task_id, number, endpoint_id, started_at, duration, status_code, response, error`

// maxAttemptRows bounds the rows of one INSERT of attempts, and so its
// parameters (8 a row) below SQLite's and PostgreSQL's limits.
const maxAttemptRows = 500

// insertAttempts stores as, in order, with as few INSERT statements as the
// parameter limits allow: one for up to maxAttemptRows attempts.
func (s *SQLStore) insertAttempts(ctx context.Context, e execer, as []Attempt) error {
	for len(as) > 0 {
		n := min(len(as), maxAttemptRows)
		var q strings.Builder
		q.WriteString("INSERT INTO taskwheel_attempts (" + attemptColumns + ") VALUES ")
		args := make([]any, 0, 8*n)
		for i, a := range as[:n] {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, a.TaskID, a.Number, s.text(a.EndpointID), s.timeArg(a.StartedAt),
				a.Duration.Microseconds(), a.StatusCode, s.text(a.Response), s.text(a.Error))
		}
		if _, err := e.ExecContext(ctx, s.db.Rebind(q.String()), args...); err != nil {
			return fmt.Errorf("record attempts: %w", err)
		}
		as = as[n:]
	}
	return nil
}

const getAttempts = `SELECT ` + attemptColumns + ` FROM taskwheel_attempts WHERE task_id = ? ORDER BY seq`

// attemptRow is a row of taskwheel_attempts.
type attemptRow struct {
	TaskID     string  `db:"task_id"`
	Number     int     `db:"number"`
	EndpointID string  `db:"endpoint_id"`
	StartedAt  sqlTime `db:"started_at"`
	Duration   int64   `db:"duration"` // microseconds
	StatusCode int     `db:"status_code"`
	Response   string  `db:"response"`
	Error      string  `db:"error"`
}

// attempt returns the Attempt that r holds.
func (r *attemptRow) attempt() Attempt {
	return Attempt{
		TaskID:     r.TaskID,
		Number:     r.Number,
		EndpointID: r.EndpointID,
		StartedAt:  r.StartedAt.t,
		Duration:   time.Duration(r.Duration) * time.Microsecond,
		StatusCode: r.StatusCode,
		Response:   r.Response,
		Error:      r.Error,
	}
}

// Attempts implements [Store].
func (s *SQLStore) Attempts(ctx context.Context, taskID string) ([]Attempt, error) {
	if !s.storable(taskID) {
		return nil, nil // no task has it
	}
	var rows []attemptRow
	err := s.retryLost(ctx, s.read, func(q dbOrConn) error {
		rows = nil
		return sqlx.SelectContext(ctx, q, &rows, s.read.Rebind(getAttempts), taskID)
	})
	if err != nil {
		return nil, fmt.Errorf("tasks: attempts of task %s: %w", taskID, err)
	}
	var as []Attempt
	for _, r := range rows {
		as = append(as, r.attempt())
	}
	return as, nil
}

// Webhook endpoints.

// Endpoint columns: those of an endpointRow. PostgreSQL keeps
// enabled_events as jsonb, SQLite as text; both read it as JSON text.
const (
	endpointColumnsSQLite = `id, app_id, url, description, enabled_events, status,
	secret, previous_secret, previous_secret_expires_at, created_at, updated_at,
	failing_since, last_success_at, disabled_at, disabled_reason, version, rate_limit, max_in_flight`
	endpointColumnsPostgres = `id, app_id, url, description, enabled_events::text AS enabled_events, status,
	secret, previous_secret, previous_secret_expires_at, created_at, updated_at,
	failing_since, last_success_at, disabled_at, disabled_reason, version, rate_limit, max_in_flight`
)

// endpointRow is a row of taskwheel_endpoints.
type endpointRow struct {
	ID                      string         `db:"id"`
	AppID                   string         `db:"app_id"`
	URL                     string         `db:"url"`
	Description             string         `db:"description"`
	EnabledEvents           string         `db:"enabled_events"` // a JSON array
	Status                  EndpointStatus `db:"status"`
	Secret                  string         `db:"secret"`
	PreviousSecret          string         `db:"previous_secret"`
	PreviousSecretExpiresAt sqlTime        `db:"previous_secret_expires_at"`
	CreatedAt               sqlTime        `db:"created_at"`
	UpdatedAt               sqlTime        `db:"updated_at"`
	FailingSince            sqlTime        `db:"failing_since"`
	LastSuccessAt           sqlTime        `db:"last_success_at"`
	DisabledAt              sqlTime        `db:"disabled_at"`
	DisabledReason          string         `db:"disabled_reason"`
	Version                 string         `db:"version"`
	RateLimit               float64        `db:"rate_limit"`
	MaxInFlight             int            `db:"max_in_flight"`
}

func (r *endpointRow) endpoint() (*Endpoint, error) {
	ep := &Endpoint{
		ID:                      r.ID,
		AppID:                   r.AppID,
		URL:                     r.URL,
		Description:             r.Description,
		Status:                  r.Status,
		Secret:                  r.Secret,
		PreviousSecret:          r.PreviousSecret,
		PreviousSecretExpiresAt: r.PreviousSecretExpiresAt.ptr(),
		CreatedAt:               r.CreatedAt.t,
		UpdatedAt:               r.UpdatedAt.t,
		FailingSince:            r.FailingSince.ptr(),
		LastSuccessAt:           r.LastSuccessAt.ptr(),
		DisabledAt:              r.DisabledAt.ptr(),
		DisabledReason:          r.DisabledReason,
		Version:                 r.Version,
		RateLimit:               r.RateLimit,
		MaxInFlight:             r.MaxInFlight,
	}
	if err := json.Unmarshal([]byte(r.EnabledEvents), &ep.EnabledEvents); err != nil {
		return nil, fmt.Errorf("endpoint %s: enabled events: %w", r.ID, err)
	}
	return ep, nil
}

// queryEndpoints runs query, which returns the dialect's endpoint columns.
func queryEndpoints(ctx context.Context, q sqlx.QueryerContext, query string, args ...any) ([]*Endpoint, error) {
	var rs []endpointRow
	if err := sqlx.SelectContext(ctx, q, &rs, query, args...); err != nil {
		return nil, err
	}
	var eps []*Endpoint
	for i := range rs {
		ep, err := rs[i].endpoint()
		if err != nil {
			return nil, err
		}
		eps = append(eps, ep)
	}
	return eps, nil
}

// queryEndpoint runs query, which returns the dialect's endpoint columns of
// at most one endpoint, and returns ErrNotFound when it returns none.
func queryEndpoint(ctx context.Context, q sqlx.QueryerContext, query string, args ...any) (*Endpoint, error) {
	eps, err := queryEndpoints(ctx, q, query, args...)
	switch {
	case err != nil:
		return nil, err
	case len(eps) == 0:
		return nil, ErrNotFound
	}
	return eps[0], nil
}

// enabledEventsArg returns events as the enabled_events column takes them:
// a JSON array.
func (s *SQLStore) enabledEventsArg(events []string) (string, error) {
	if events != nil && s.dialect == Postgres {
		texts := make([]string, len(events))
		for i, e := range events {
			texts[i] = s.text(e)
		}
		events = texts
	}
	b, err := json.Marshal(events)
	return string(b), err
}

// expiresArg returns an optional time as the store's dialect stores it.
func (s *SQLStore) expiresArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return s.timeArg(*t)
}

// Endpoint queries. Inserts take the ID, the app, the URL, the description,
// the enabled events, the status, the secret, the previous secret, its
// expiry, the version and the limits; updates take the ID and the UpdatedAt they compare and set, then
// the same fields but the app. An update sets updated_at later than it was
// (see nextVersion), so that it never repeats; one that makes an inactive
// endpoint active clears its health (failing_since, disabled_at,
// disabled_reason), and one that changes the URL the health of the old
// receiver (failing_since, last_success_at): the SET expressions read the
// row as it was.
const (
	insertEndpointSQLite = `INSERT INTO taskwheel_endpoints (id, app_id, url, description, enabled_events,
	status, secret, previous_secret, previous_secret_expires_at, version, rate_limit, max_in_flight, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)
ON CONFLICT DO NOTHING
RETURNING ` + endpointColumnsSQLite
	insertEndpointPostgres = `INSERT INTO taskwheel_endpoints (id, app_id, url, description, enabled_events,
	status, secret, previous_secret, previous_secret_expires_at, version, rate_limit, max_in_flight, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8, $9, $10, $11, $12, now(), now())
ON CONFLICT DO NOTHING
RETURNING ` + endpointColumnsPostgres
	getEndpointSQLite        = `SELECT ` + endpointColumnsSQLite + ` FROM taskwheel_endpoints WHERE id = ?`
	getEndpointPostgres      = `SELECT ` + endpointColumnsPostgres + ` FROM taskwheel_endpoints WHERE id = $1`
	listEndpointsSQLite      = `SELECT ` + endpointColumnsSQLite + ` FROM taskwheel_endpoints WHERE app_id = ? ORDER BY created_at, id`
	listEndpointsPostgres    = `SELECT ` + endpointColumnsPostgres + ` FROM taskwheel_endpoints WHERE app_id = $1 ORDER BY created_at, id`
	listAllEndpointsSQLite   = `SELECT ` + endpointColumnsSQLite + ` FROM taskwheel_endpoints ORDER BY created_at, id`
	listAllEndpointsPostgres = `SELECT ` + endpointColumnsPostgres + ` FROM taskwheel_endpoints ORDER BY created_at, id`
	updateEndpointSQLite     = `UPDATE taskwheel_endpoints SET url = ?3, description = ?4, enabled_events = ?5,
	status = ?6, secret = ?7, previous_secret = ?8, previous_secret_expires_at = ?9, version = ?10,
	rate_limit = ?11, max_in_flight = ?12,
	tokens_at = CASE WHEN rate_limit <> ?11 THEN NULL ELSE tokens_at END,
	updated_at = max(?13, updated_at + 1),
	failing_since = CASE WHEN status = 'inactive' AND ?6 = 'active' OR url <> ?3 THEN NULL ELSE failing_since END,
	last_success_at = CASE WHEN url <> ?3 THEN NULL ELSE last_success_at END,
	disabled_at = CASE WHEN status = 'inactive' AND ?6 = 'active' THEN NULL ELSE disabled_at END,
	disabled_reason = CASE WHEN status = 'inactive' AND ?6 = 'active' THEN '' ELSE disabled_reason END
WHERE id = ?1 AND updated_at = ?2
RETURNING ` + endpointColumnsSQLite
	updateEndpointPostgres = `UPDATE taskwheel_endpoints SET url = $3, description = $4, enabled_events = $5::text::jsonb,
	status = $6, secret = $7, previous_secret = $8, previous_secret_expires_at = $9, version = $10,
	rate_limit = $11, max_in_flight = $12,
	tokens_at = CASE WHEN rate_limit <> $11 THEN NULL ELSE tokens_at END,
	updated_at = greatest(now(), updated_at + interval '1 microsecond'),
	failing_since = CASE WHEN status = 'inactive' AND $6 = 'active' OR url <> $3 THEN NULL ELSE failing_since END,
	last_success_at = CASE WHEN url <> $3 THEN NULL ELSE last_success_at END,
	disabled_at = CASE WHEN status = 'inactive' AND $6 = 'active' THEN NULL ELSE disabled_at END,
	disabled_reason = CASE WHEN status = 'inactive' AND $6 = 'active' THEN '' ELSE disabled_reason END
WHERE id = $1 AND updated_at = $2
RETURNING ` + endpointColumnsPostgres
	endpointExists            = `SELECT count(*) FROM taskwheel_endpoints WHERE id = ?`
	wakeEndpointWaitersSQLite = `UPDATE taskwheel_tasks SET run_at = min(run_at, ?5), wait_endpoint = NULL
WHERE app_id = ?1 AND state IN ('scheduled', 'retrying') AND wait_key IS NULL
	AND (wait_endpoint = ?2 OR wait_reason IN (?3, ?4))`
	wakeEndpointWaitersPostgres = `UPDATE taskwheel_tasks SET run_at = LEAST(run_at, now()), wait_endpoint = NULL
WHERE app_id = $1 AND state IN ('scheduled', 'retrying') AND wait_key IS NULL
	AND (wait_endpoint = $2 OR wait_reason IN ($3, $4))`
	deleteEndpoint      = `DELETE FROM taskwheel_endpoints WHERE id = ?`
	deleteEndpointSlots = `DELETE FROM taskwheel_endpoint_slots WHERE endpoint_id = ?`
)

// InsertEndpoint implements [Store].
func (s *SQLStore) InsertEndpoint(ctx context.Context, ep *Endpoint) (*Endpoint, error) {
	events, err := s.enabledEventsArg(ep.EnabledEvents)
	if err != nil {
		return nil, fmt.Errorf("tasks: insert endpoint %s: %w", ep.ID, err)
	}
	got, err := queryEndpoint(ctx, s.db, s.pick(insertEndpointSQLite, insertEndpointPostgres), s.args(ep.ID, ep.AppID,
		s.text(ep.URL), s.text(ep.Description), events, string(ep.Status), s.text(ep.Secret),
		s.text(ep.PreviousSecret), s.expiresArg(ep.PreviousSecretExpiresAt), s.text(ep.Version),
		ep.RateLimit, ep.MaxInFlight)...)
	switch {
	case errors.Is(err, ErrNotFound): // the ID's unique constraint turned it away
		return nil, invalid("id", "endpoint %s exists", ep.ID)
	case err != nil:
		return nil, fmt.Errorf("tasks: insert endpoint %s: %w", ep.ID, err)
	}
	return got, nil
}

// GetEndpoint implements [Store].
func (s *SQLStore) GetEndpoint(ctx context.Context, id string) (*Endpoint, error) {
	if !s.storable(id) {
		return nil, ErrNotFound
	}
	var ep *Endpoint
	err := s.retryLost(ctx, s.read, func(q dbOrConn) (err error) {
		ep, err = queryEndpoint(ctx, q, s.pick(getEndpointSQLite, getEndpointPostgres), id)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("tasks: get endpoint %s: %w", id, err)
	}
	return ep, err
}

// ListEndpoints implements [Store].
func (s *SQLStore) ListEndpoints(ctx context.Context, appID string) ([]*Endpoint, error) {
	query, args := s.pick(listEndpointsSQLite, listEndpointsPostgres), []any{appID}
	switch {
	case appID == "":
		query, args = s.pick(listAllEndpointsSQLite, listAllEndpointsPostgres), nil
	case !s.storable(appID):
		return nil, nil // no endpoint has it
	}
	var eps []*Endpoint
	err := s.retryLost(ctx, s.read, func(q dbOrConn) (err error) {
		eps, err = queryEndpoints(ctx, q, query, args...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tasks: list endpoints of %s: %w", appID, err)
	}
	return eps, nil
}

// UpdateEndpoint implements [Store].
func (s *SQLStore) UpdateEndpoint(ctx context.Context, ep *Endpoint) (*Endpoint, error) {
	if !s.storable(ep.ID) {
		return nil, ErrNotFound
	}
	events, err := s.enabledEventsArg(ep.EnabledEvents)
	if err != nil {
		return nil, fmt.Errorf("tasks: update endpoint %s: %w", ep.ID, err)
	}
	got, err := queryEndpoint(ctx, s.db, s.pick(updateEndpointSQLite, updateEndpointPostgres), s.args(ep.ID,
		s.timeArg(ep.UpdatedAt), s.text(ep.URL), s.text(ep.Description), events, string(ep.Status),
		s.text(ep.Secret), s.text(ep.PreviousSecret), s.expiresArg(ep.PreviousSecretExpiresAt), s.text(ep.Version),
		ep.RateLimit, ep.MaxInFlight)...)
	if errors.Is(err, ErrNotFound) {
		err = s.conflictOrNotFound(ctx, endpointExists, ep.ID)
	}
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConflict) {
		return nil, fmt.Errorf("tasks: update endpoint %s: %w", ep.ID, err)
	}
	if err == nil {
		// The tasks that wait for the endpoint's limits, which may have
		// been raised or removed, are due now: they take its capacity
		// again under the limits as they are (see endpoint_limits.go).
		if _, werr := s.db.ExecContext(ctx, s.pick(wakeEndpointWaitersSQLite, wakeEndpointWaitersPostgres),
			s.args(got.AppID, ep.ID, waitEndpointSlots(ep.ID), waitEndpointRate(ep.ID))...); werr != nil {
			return nil, fmt.Errorf("tasks: update endpoint %s: wake its waiting tasks: %w", ep.ID, werr)
		}
	}
	return got, err
}

// conflictOrNotFound tells why a compare-and-set update of the record id
// changed no row: ErrConflict if exists, a query counting the records with
// that ID, finds it, else ErrNotFound.
func (s *SQLStore) conflictOrNotFound(ctx context.Context, exists, id string) error {
	var n int
	if err := s.db.GetContext(ctx, &n, s.db.Rebind(exists), id); err != nil {
		return err
	}
	if n > 0 {
		return ErrConflict
	}
	return ErrNotFound
}

// DeleteEndpoint implements [Store]. The endpoint's attempts stay in the
// history.
func (s *SQLStore) DeleteEndpoint(ctx context.Context, id string) error {
	if !s.storable(id) {
		return ErrNotFound
	}
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if n, err = exec(ctx, tx, s.db.Rebind(deleteEndpoint), id); err != nil || n == 0 {
			return err
		}
		// Its slots and queue marks (see endpoint_limits.go) go with it.
		_, err = tx.ExecContext(ctx, s.db.Rebind(deleteEndpointSlots), id)
		return err
	})
	switch {
	case err != nil:
		return fmt.Errorf("tasks: delete endpoint %s: %w", id, err)
	case n == 0:
		return ErrNotFound
	}
	return nil
}
