package tasks

import (
	"context"
	"database/sql"
	"embed"
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
// concurrent migrations run one after the other.
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
