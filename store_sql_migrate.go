package tasks

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/taskwheel/tasks/internal/sqlstore"
)

// Migrations.

//go:embed migrations
var migrationFiles embed.FS

// migration is one versioned change of the schema, from a file named
// migrations/<dialect>/<version>_<name>.sql.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns d's migrations in version order.
func (d Dialect) migrations() ([]migration, error) {
	dir := "migrations/sqlite"
	if d == Postgres {
		dir = "migrations/postgres"
	}
	files, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, f := range files { // in name order, which is version order
		prefix, _, _ := strings.Cut(f.Name(), "_")
		v, err := strconv.Atoi(prefix)
		if err != nil || len(ms) > 0 && v <= ms[len(ms)-1].version {
			return nil, fmt.Errorf("migration %s: want a file name starting with a version above the last", f.Name())
		}
		b, err := migrationFiles.ReadFile(dir + "/" + f.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: f.Name(), sql: string(b)})
	}
	return ms, nil
}

const (
	createMigrationsTable = `CREATE TABLE IF NOT EXISTS taskwheel_migrations (
	version INTEGER PRIMARY KEY,
	name    TEXT NOT NULL
)`
	lastMigration   = `SELECT COALESCE(MAX(version), 0) FROM taskwheel_migrations`
	recordMigration = `INSERT INTO taskwheel_migrations (version, name) VALUES (?, ?)`
	// migrateLock keys the PostgreSQL advisory lock that Migrate holds
	// ("taskwhee" in ASCII).
	migrateLock = 0x7461736b77686565
)

// Migrate brings the store's tables up to date: it applies, in one
// transaction, the migrations embedded in this package that the table
// taskwheel_migrations does not list yet. It is idempotent, and safe to run
// from several processes at once: the transaction holds SQLite's write lock
// (BEGIN IMMEDIATE) or a PostgreSQL advisory lock from its start, so
// concurrent migrations run one after the other. A database that a newer
// version of this package migrated past this one's latest migration is
// left alone, with an error matching [ErrSchemaTooNew] that names both
// versions.
//
// The migrations are also served, for tools that apply them instead, by
// the packages github.com/taskwheel/tasks/sqlite and
// github.com/taskwheel/tasks/postgres as an fs.FS (sqlite.Migrations,
// postgres.Migrations).
func (s *SQLStore) Migrate(ctx context.Context) error {
	ms, err := s.dialect.migrations()
	if err == nil {
		err = s.migrate(ctx, ms)
	}
	if err != nil {
		return fmt.Errorf("tasks: migrate: %w", err)
	}
	return nil
}

func (s *SQLStore) migrate(ctx context.Context, ms []migration) (err error) {
	if len(ms) == 0 {
		return errors.New("no migrations embedded")
	}
	// The transaction is begun by hand on one connection: BeginTx cannot ask
	// for IMMEDIATE on a caller's SQLite database opened without
	// _txlock=immediate.
	var conn *sql.Conn
	if s.dialect == SQLite {
		// A caller's database opened with _journal_mode=WAL switches a new
		// file to WAL as it connects, which may fail at once (see
		// sqlstore.RetryBusy) if another process does so too.
		err = sqlstore.RetryBusy(ctx, sqlstore.DefaultBusyTimeout, func() (err error) {
			conn, err = s.db.Conn(ctx)
			return err
		})
	} else {
		conn, err = s.db.Conn(ctx)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	begin := "BEGIN IMMEDIATE"
	if s.dialect == Postgres {
		begin = "BEGIN"
	}
	if _, err := conn.ExecContext(ctx, begin); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// Its error is of no interest: a failed statement or COMMIT may
			// have ended the transaction already.
			conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	if s.dialect == Postgres {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLock); err != nil {
			return err
		}
	}
	if _, err := conn.ExecContext(ctx, createMigrationsTable); err != nil {
		return err
	}
	var last int
	if err := conn.QueryRowContext(ctx, lastMigration).Scan(&last); err != nil {
		return err
	}
	if latest := ms[len(ms)-1].version; last > latest {
		return &schemaError{version: last, latest: latest}
	}
	for _, m := range ms {
		if m.version <= last {
			continue
		}
		if _, err := conn.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		if _, err := conn.ExecContext(ctx, s.db.Rebind(recordMigration), m.version, m.name); err != nil {
			return err
		}
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}

// Queries of SchemaVersion: whether taskwheel_migrations exists (as the
// connections' search_path finds it, on PostgreSQL), then its last version.
const (
	hasMigrationsSQLite   = `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'taskwheel_migrations'`
	hasMigrationsPostgres = `SELECT count(*) FROM (SELECT to_regclass('taskwheel_migrations') AS t) r WHERE t IS NOT NULL`
)

// SchemaVersion returns the version of the store's tables, the last
// migration applied to its database (0 for a database never migrated),
// and latest, the version of the last migration embedded in this package,
// which [SQLStore.Migrate] brings them to. It changes nothing.
func (s *SQLStore) SchemaVersion(ctx context.Context) (version, latest int, err error) {
	ms, err := s.dialect.migrations()
	if err == nil && len(ms) == 0 {
		err = errors.New("no migrations embedded")
	}
	if err != nil {
		return 0, 0, fmt.Errorf("tasks: read schema version: %w", err)
	}
	var n int
	if err := s.read.QueryRowContext(ctx, s.pick(hasMigrationsSQLite, hasMigrationsPostgres)).Scan(&n); err != nil {
		return 0, 0, fmt.Errorf("tasks: read schema version: %w", err)
	}
	if n > 0 {
		if err := s.read.QueryRowContext(ctx, lastMigration).Scan(&version); err != nil {
			return 0, 0, fmt.Errorf("tasks: read schema version: %w", err)
		}
	}
	return version, ms[len(ms)-1].version, nil
}

// checkSchema returns an error unless the store's tables are at the
// version of this package's last migration: [ErrSchemaTooNew] when a
// newer version migrated them, another when they need migrating.
// Engine.Start checks a store with it.
func (s *SQLStore) checkSchema(ctx context.Context) error {
	version, latest, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if version != latest {
		return &schemaError{version: version, latest: latest}
	}
	return nil
}

// schemaError is a database's schema at a version that this package does
// not run on.
type schemaError struct{ version, latest int }

func (e *schemaError) Error() string {
	if e.version > e.latest {
		return fmt.Sprintf("database schema version %d is newer than this binary's %d: "+
			"a newer version of github.com/taskwheel/tasks migrated it; run that version, or point this one at another database",
			e.version, e.latest)
	}
	return fmt.Sprintf("database schema version %d is older than this binary's %d: migrate it first (SQLStore.Migrate, or tasksd migrate)",
		e.version, e.latest)
}

// Is makes a schema newer than this package's match ErrSchemaTooNew.
func (e *schemaError) Is(target error) bool { return target == ErrSchemaTooNew && e.version > e.latest }
