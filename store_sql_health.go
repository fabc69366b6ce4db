package tasks

// Endpoints' health in SQL (Store.RecordEndpointHealth).

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Health queries take the endpoint's ID, ok, gone, disableAfter and
// resolution in microseconds; SQLite's also its clock (see args). Each is
// one UPDATE whose WHERE holds only when it changes the row, so that a
// call that changes nothing writes nothing and, on PostgreSQL, locks no
// row: PostgreSQL locks only the rows an UPDATE's WHERE selects, and
// rechecks it on the latest version of a row that a concurrent call
// changed first, so that of concurrent calls exactly one disables the
// endpoint, and of concurrent successes within resolution one writes.
// The SET expressions read the row as it was; last_success_at never moves
// back, and a success sets it on an inactive endpoint too, changing
// nothing else there; disabling alone moves updated_at, as UpdateEndpoint
// does (see nextVersion).
const (
	succeedSQLite = `(?2 AND (failing_since IS NOT NULL AND status = 'active'
		OR last_success_at IS NULL OR last_success_at <= ?6 - ?5))`
	disableSQLite = `(NOT ?2 AND (?3 OR (failing_since <= ?6 - ?4
		AND (last_success_at IS NULL OR last_success_at <= ?6 - ?4 - 2 * ?5))))`
	healthSQLite = `UPDATE taskwheel_endpoints SET
	failing_since = CASE WHEN NOT ?2 THEN coalesce(failing_since, ?6) WHEN status = 'active' THEN NULL ELSE failing_since END,
	last_success_at = CASE WHEN ?2 THEN max(coalesce(last_success_at, ?6), ?6) ELSE last_success_at END,
	status = CASE WHEN ` + disableSQLite + ` THEN 'inactive' ELSE status END,
	disabled_at = CASE WHEN ` + disableSQLite + ` THEN ?6 ELSE disabled_at END,
	disabled_reason = CASE
		WHEN NOT ?2 AND ?3 THEN '` + disabledGone + `'
		WHEN ` + disableSQLite + ` THEN 'every delivery failed since ' || strftime('%Y-%m-%dT%H:%M:%SZ', failing_since / 1000000, 'unixepoch')
		ELSE disabled_reason END,
	updated_at = CASE WHEN ` + disableSQLite + ` THEN max(?6, updated_at + 1) ELSE updated_at END
WHERE id = ?1 AND (` + succeedSQLite + `
	OR NOT ?2 AND status = 'active' AND (failing_since IS NULL OR ` + disableSQLite + `))
RETURNING ` + endpointColumnsSQLite
	succeedPostgres = `($2::boolean AND (failing_since IS NOT NULL AND status = 'active'
		OR last_success_at IS NULL OR last_success_at <= now() - $5::bigint * interval '1 microsecond'))`
	disablePostgres = `(NOT $2::boolean AND ($3::boolean OR (failing_since <= now() - $4::bigint * interval '1 microsecond'
		AND (last_success_at IS NULL OR last_success_at <= now() - ($4::bigint + 2 * $5::bigint) * interval '1 microsecond'))))`
	healthPostgres = `UPDATE taskwheel_endpoints SET
	failing_since = CASE WHEN NOT $2::boolean THEN coalesce(failing_since, now()) WHEN status = 'active' THEN NULL ELSE failing_since END,
	last_success_at = CASE WHEN $2::boolean THEN greatest(last_success_at, now()) ELSE last_success_at END,
	status = CASE WHEN ` + disablePostgres + ` THEN 'inactive' ELSE status END,
	disabled_at = CASE WHEN ` + disablePostgres + ` THEN now() ELSE disabled_at END,
	disabled_reason = CASE
		WHEN NOT $2::boolean AND $3::boolean THEN '` + disabledGone + `'
		WHEN ` + disablePostgres + ` THEN 'every delivery failed since ' || to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
		ELSE disabled_reason END,
	updated_at = CASE WHEN ` + disablePostgres + ` THEN greatest(now(), updated_at + interval '1 microsecond') ELSE updated_at END
WHERE id = $1 AND (` + succeedPostgres + `
	OR NOT $2::boolean AND status = 'active' AND (failing_since IS NULL OR ` + disablePostgres + `))
RETURNING ` + endpointColumnsPostgres
)

// RecordEndpointHealth implements [Store].
func (s *SQLStore) RecordEndpointHealth(ctx context.Context, id string, ok, gone bool, disableAfter, resolution time.Duration) (*Endpoint, error) {
	switch {
	case disableAfter < 0:
		return nil, invalid("disable_after", "must not be negative")
	case resolution < 0:
		return nil, invalid("resolution", "must not be negative")
	}
	if !s.storable(id) {
		return nil, nil // no endpoint has it
	}
	ep, err := queryEndpoint(ctx, s.db, s.pick(healthSQLite, healthPostgres),
		s.args(id, ok, gone && !ok, disableAfter.Microseconds(), resolution.Microseconds())...)
	switch {
	case errors.Is(err, ErrNotFound): // unchanged, inactive or unknown
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("tasks: record health of endpoint %s: %w", id, err)
	}
	return ep, nil
}
