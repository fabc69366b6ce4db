package tasks

// Endpoints' health in SQL (Store.RecordEndpointHealth).

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Health queries take the endpoint's ID, ok, gone and disableAfter in
// microseconds; SQLite's also its clock (see args). Each is one UPDATE
// whose WHERE holds only when it changes the row, so that a call that
// changes nothing writes nothing and, on PostgreSQL, locks no row:
// PostgreSQL locks only the rows an UPDATE's WHERE selects, and rechecks
// it on the latest version of a row that a concurrent call changed first,
// so that of concurrent calls exactly one disables the endpoint. The SET
// expressions read the row as it was; disabling alone moves updated_at,
// as UpdateEndpoint does (see nextVersion).
const (
	disableSQLite = `(NOT ?2 AND (?3 OR failing_since <= ?5 - ?4))`
	healthSQLite  = `UPDATE taskwheel_endpoints SET
	failing_since = CASE WHEN ?2 THEN NULL ELSE coalesce(failing_since, ?5) END,
	status = CASE WHEN ` + disableSQLite + ` THEN 'inactive' ELSE status END,
	disabled_at = CASE WHEN ` + disableSQLite + ` THEN ?5 ELSE disabled_at END,
	disabled_reason = CASE
		WHEN NOT ?2 AND ?3 THEN '` + disabledGone + `'
		WHEN ` + disableSQLite + ` THEN 'every delivery failed since ' || strftime('%Y-%m-%dT%H:%M:%SZ', failing_since / 1000000, 'unixepoch')
		ELSE disabled_reason END,
	updated_at = CASE WHEN ` + disableSQLite + ` THEN max(?5, updated_at + 1) ELSE updated_at END
WHERE id = ?1 AND status = 'active'
	AND CASE WHEN ?2 THEN failing_since IS NOT NULL ELSE failing_since IS NULL OR ` + disableSQLite + ` END
RETURNING ` + endpointColumnsSQLite
	disablePostgres = `(NOT $2::boolean AND ($3::boolean OR failing_since <= now() - $4::bigint * interval '1 microsecond'))`
	healthPostgres  = `UPDATE taskwheel_endpoints SET
	failing_since = CASE WHEN $2::boolean THEN NULL ELSE coalesce(failing_since, now()) END,
	status = CASE WHEN ` + disablePostgres + ` THEN 'inactive' ELSE status END,
	disabled_at = CASE WHEN ` + disablePostgres + ` THEN now() ELSE disabled_at END,
	disabled_reason = CASE
		WHEN NOT $2::boolean AND $3::boolean THEN '` + disabledGone + `'
		WHEN ` + disablePostgres + ` THEN 'every delivery failed since ' || to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
		ELSE disabled_reason END,
	updated_at = CASE WHEN ` + disablePostgres + ` THEN greatest(now(), updated_at + interval '1 microsecond') ELSE updated_at END
WHERE id = $1 AND status = 'active'
	AND CASE WHEN $2::boolean THEN failing_since IS NOT NULL ELSE failing_since IS NULL OR ` + disablePostgres + ` END
RETURNING ` + endpointColumnsPostgres
)

// RecordEndpointHealth implements [Store].
func (s *SQLStore) RecordEndpointHealth(ctx context.Context, id string, ok, gone bool, disableAfter time.Duration) (*Endpoint, error) {
	if disableAfter < 0 {
		return nil, invalid("disable_after", "must not be negative")
	}
	if !s.storable(id) {
		return nil, nil // no endpoint has it
	}
	ep, err := queryEndpoint(ctx, s.db, s.pick(healthSQLite, healthPostgres),
		s.args(id, ok, gone && !ok, disableAfter.Microseconds())...)
	switch {
	case errors.Is(err, ErrNotFound): // unchanged, inactive or unknown
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("tasks: record health of endpoint %s: %w", id, err)
	}
	return ep, nil
}
