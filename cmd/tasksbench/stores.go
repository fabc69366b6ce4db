package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for -postgres

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/bench"
	"github.com/taskwheel/tasks/postgres"
	"github.com/taskwheel/tasks/sqlite"
)

// target is a store that workloads run on: each run gets a fresh, empty
// one.
type target struct {
	name string
	// open returns a fresh, empty store and the func that closes it and
	// removes what open made.
	open func(ctx context.Context) (tasks.Store, func() error, error)
	// openDB returns the database of a fresh, empty store, migrated, for
	// the floors, and the func that closes it; nil where no floor applies.
	openDB func(ctx context.Context) (*sql.DB, tasks.Dialect, func() error, error)
	// share returns n fresh stores on one new database, as n processes
	// would open it (the memory store's are one), and the func that closes
	// them.
	share func(ctx context.Context, n int) ([]tasks.Store, func() error, error)
}

// withStore runs f on a fresh store of t and closes it.
func withStore[T any](ctx context.Context, t *target, f func(tasks.Store) (T, error)) (_ T, err error) {
	s, closeStore, err := t.open(ctx)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("open store: %w", err)
	}
	defer func() {
		if cerr := closeStore(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
		}
	}()
	return f(s)
}

// withDB runs the floor f on a fresh database of t and closes it.
func withDB(ctx context.Context, t *target, f func(*sql.DB, tasks.Dialect) (bench.Rate, error)) (_ bench.Rate, err error) {
	db, d, closeDB, err := t.openDB(ctx)
	if err != nil {
		return bench.Rate{}, fmt.Errorf("floor: open database: %w", err)
	}
	defer func() {
		if cerr := closeDB(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("floor: close database: %w", cerr))
		}
	}()
	r, err := f(db, d)
	if err != nil {
		return r, fmt.Errorf("floor: %w", err)
	}
	return r, nil
}

func memoryTarget() *target {
	return &target{
		name: "memory",
		open: func(context.Context) (tasks.Store, func() error, error) {
			return tasks.NewMemoryStore(), func() error { return nil }, nil
		},
		share: func(_ context.Context, n int) ([]tasks.Store, func() error, error) {
			s := tasks.NewMemoryStore()
			ss := make([]tasks.Store, n)
			for i := range ss {
				ss[i] = s
			}
			return ss, func() error { return nil }, nil
		},
	}
}

// sqliteTarget, named name, opens each store in a new file in dir with
// cfg, and removes it when the store is closed. The floors run on the
// store's own write pool: one connection with a statement cache, as
// sqlite.Open sets it up.
func sqliteTarget(name, dir string, cfg *sqlite.Config) *target {
	var seq atomic.Int64
	open := func(context.Context) (*sqlite.Store, func() error, error) {
		path := filepath.Join(dir, "bench-"+strconv.FormatInt(seq.Add(1), 10)+".db")
		s, err := sqlite.Open(path, cfg)
		if err != nil {
			return nil, nil, err
		}
		return s, func() error {
			err := s.Close()
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
					err = errors.Join(err, rerr)
				}
			}
			return err
		}, nil
	}
	share := func(ctx context.Context, n int) ([]tasks.Store, func() error, error) {
		first, closeFirst, err := open(ctx)
		if err != nil {
			return nil, nil, err
		}
		ss := []tasks.Store{first}
		closers := []func() error{}
		closeAll := func() error {
			var errs []error
			for _, c := range closers {
				errs = append(errs, c())
			}
			return errors.Join(append(errs, closeFirst())...)
		}
		for len(ss) < n {
			s, err := sqlite.Open(filepath.Join(dir, "bench-"+strconv.FormatInt(seq.Load(), 10)+".db"), nil)
			if err != nil {
				return nil, nil, errors.Join(err, closeAll())
			}
			ss = append(ss, s)
			closers = append(closers, s.Close)
		}
		return ss, closeAll, nil
	}
	return &target{
		name:  name,
		share: share,
		open: func(ctx context.Context) (tasks.Store, func() error, error) {
			return open(ctx)
		},
		openDB: func(ctx context.Context) (*sql.DB, tasks.Dialect, func() error, error) {
			s, closeStore, err := open(ctx)
			if err != nil {
				return nil, 0, nil, err
			}
			return s.DB(), tasks.SQLite, closeStore, nil
		},
	}
}

// maxConns is the connection pool of the PostgreSQL database, which the
// engines and the floors share.
const maxConns = 16

// pgTimeout bounds the setup and cleanup statements on PostgreSQL.
const pgTimeout = 30 * time.Second

// pgSchema is the PostgreSQL database that tasksbench runs on: a schema
// of its own, named by search_path.
type pgSchema struct {
	db     *sql.DB
	schema string
	// admin, when tasksbench created the schema, is a handle outside it
	// that drops it; nil when the URL named the schema.
	admin *sql.DB
	// empty reports whether the tables held no tasks when tasksbench
	// began, so that it may empty them.
	empty bool
}

// openPostgres sets up the database that dsn names. Without a search_path
// in dsn, it creates a new schema, which close drops. With one, it works
// in that schema, which must hold no tasks (tasksbench empties its tables
// before each run), and close leaves it, its tables emptied.
func openPostgres(ctx context.Context, dsn string) (_ *pgSchema, err error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse -postgres: %w", err)
	}
	p := &pgSchema{schema: cfg.RuntimeParams["search_path"]}
	ctx, cancel := context.WithTimeout(ctx, pgTimeout)
	defer cancel()
	if p.schema == "" {
		p.schema = "tasksbench_" + strings.ToLower(rand.Text()[:12])
		if p.admin, err = sql.Open("pgx", dsn); err != nil {
			return nil, err
		}
		if _, err := p.admin.ExecContext(ctx, "CREATE SCHEMA "+p.schema); err != nil {
			p.admin.Close()
			return nil, fmt.Errorf("create schema %s: %w", p.schema, err)
		}
		if dsn, err = withParam(dsn, "search_path", p.schema); err != nil {
			return nil, errors.Join(err, p.close(ctx))
		}
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.close(ctx))
		}
	}()
	if p.db, err = sql.Open("pgx", dsn); err != nil {
		return nil, err
	}
	p.db.SetMaxOpenConns(maxConns)
	p.db.SetMaxIdleConns(maxConns)
	s, err := postgres.New(p.db)
	if err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("schema %s: %w", p.schema, err)
	}
	if p.admin == nil {
		var busy bool
		if err := p.db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM taskwheel_tasks)").Scan(&busy); err != nil {
			return nil, fmt.Errorf("schema %s: %w", p.schema, err)
		}
		if busy {
			return nil, fmt.Errorf("schema %s (the search_path of -postgres) holds tasks; tasksbench empties its tables, "+
				"so it runs only on a schema without tasks, or on a new one of its own when -postgres names none", p.schema)
		}
	}
	p.empty = true
	return p, nil
}

// truncate empties the library's tables: a run's endpoint slots or
// roles left to the next would make its deliveries wait for capacity
// nobody holds, or its retention for a role held by an engine that
// stopped.
const truncate = `TRUNCATE taskwheel_tasks, taskwheel_attempts, taskwheel_endpoints, taskwheel_endpoint_slots,
	taskwheel_periodic, taskwheel_limits, taskwheel_roles, taskwheel_revoked_sessions`

// reset empties the tables for the next run.
func (p *pgSchema) reset(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pgTimeout)
	defer cancel()
	if _, err := p.db.ExecContext(ctx, truncate); err != nil {
		return fmt.Errorf("empty the tables of schema %s: %w", p.schema, err)
	}
	return nil
}

// close drops the schema tasksbench created, or empties the tables of the
// one it was given if they were empty at first, and closes the handles;
// even when ctx has ended.
func (p *pgSchema) close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pgTimeout)
	defer cancel()
	var errs []error
	if p.db != nil {
		if p.admin == nil && p.empty {
			errs = append(errs, p.reset(ctx))
		}
		errs = append(errs, p.db.Close())
	}
	if p.admin != nil {
		if _, err := p.admin.ExecContext(ctx, "DROP SCHEMA "+p.schema+" CASCADE"); err != nil {
			errs = append(errs, fmt.Errorf("drop schema %s: %w", p.schema, err))
		}
		errs = append(errs, p.admin.Close())
	}
	return errors.Join(errs...)
}

func (p *pgSchema) target() *target {
	return &target{
		name: "postgres",
		open: func(ctx context.Context) (tasks.Store, func() error, error) {
			if err := p.reset(ctx); err != nil {
				return nil, nil, err
			}
			s, err := postgres.New(p.db)
			return s, func() error { return nil }, err // the store leaves db open
		},
		share: func(ctx context.Context, n int) ([]tasks.Store, func() error, error) {
			if err := p.reset(ctx); err != nil {
				return nil, nil, err
			}
			var ss []tasks.Store
			for range n {
				s, err := postgres.New(p.db)
				if err != nil {
					return nil, nil, err
				}
				ss = append(ss, s)
			}
			return ss, func() error { return nil }, nil
		},
		openDB: func(ctx context.Context) (*sql.DB, tasks.Dialect, func() error, error) {
			if err := p.reset(ctx); err != nil {
				return nil, 0, nil, err
			}
			return p.db, tasks.Postgres, func() error { return nil }, nil
		},
	}
}

// withParam returns dsn, a PostgreSQL URL or keyword/value string, with
// the connection parameter key set to value, which must not need quoting.
func withParam(dsn, key, value string) (string, error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " " + key + "=" + value, nil // keyword/value form: the last one wins
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("parse -postgres: %w", err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// redact returns dsn without its password, for the JSON report.
func redact(dsn string) string {
	if dsn == "" {
		return ""
	}
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	return "(set)"
}
