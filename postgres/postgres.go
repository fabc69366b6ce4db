// Package postgres opens a [tasks.SQLStore] on PostgreSQL through pgx
// (github.com/jackc/pgx/v5 and its database/sql driver, stdlib), with a
// sized pool, and adds what needs pgx itself: LISTEN/NOTIFY, by which
// engines in several processes sharing the database hear of each other's
// tasks at once.
//
//	store, err := postgres.Open(ctx, "postgres://app@db.example.com/app", nil)
//	if err != nil { … }
//	defer store.Close()
//	eng, err := tasks.NewEngine(store, nil)
//
// An application with a pool of its own, whose transactions enqueue tasks
// with [tasks.Engine.EnqueueTx], builds the store on it with [New]. One
// that applies its schema changes with a tool of its own, such as goose,
// applies [Migrations] with it instead of calling
// [tasks.SQLStore.Migrate].
//
// An engine's claims commit with synchronous_commit off for their own
// transaction, so that no task starts later for waiting on the disk; a
// crash of the server can forget the claims of its last moments, whose
// tasks then run a second time. Set taskwheel.synchronous_claims to on
// for the store's connections (ALTER DATABASE … SET, ALTER ROLE … SET,
// or options=-ctaskwheel.synchronous_claims%3Don in the URL) to have them
// wait as every other commit does. [Open] refuses a value that PostgreSQL
// does not read as a boolean, which claims would read as off.
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/sqlstore"
)

// Config configures [Open]. A nil *Config means every default.
type Config struct {
	// MaxConns bounds the connections the pool opens: a call that finds
	// them all in use waits for one. A started engine needs five or six at
	// once, however many workers it has: its listener holds one for as
	// long as it runs, and its scheduler's claims, its outcomes, its
	// leases and rescues, and its retention pass take one each while they
	// run; workers hold none while their tasks run (a webhook delivery's
	// retry reads the task's attempts). Add one for each API request or
	// Enqueue under way at once. The processes sharing a server fit its
	// max_connections (100 by default, 3 of them reserved for superusers)
	// at MaxConns each. Defaults to [DefaultMaxConns]; at least 2.
	MaxConns int
	// MaxIdleTime is how long a connection may stay idle in the pool
	// before it is closed, so that a process holds the connections it
	// used lately, not the most it ever used. Defaults to
	// [DefaultMaxIdleTime].
	MaxIdleTime time.Duration
}

// Migrations are the tables of package tasks on PostgreSQL, as the
// migrations that [tasks.SQLStore.Migrate] applies, in goose's format, for
// an application that applies them with its own tool: files named
// <version>_<name>.sql in the FS's root, each marked "-- +goose Up", the
// migration as one goose statement (a PL/pgSQL body included), then the
// statements that record it in taskwheel_migrations, as Migrate does.
// Migrate, Open and [tasks.Engine.Start] then find the tables up to date,
// and refuse them once a newer version of package tasks migrated them
// past this one ([tasks.ErrSchemaTooNew]). There are no Down migrations.
// The tables go in the connections' current schema. With goose, keep the
// history in a table of its own, apart from the application's migrations:
//
//	p, err := goose.NewProvider(goose.DialectPostgres, db, postgres.Migrations,
//		goose.WithTableName("taskwheel_goose_db_version"))
//	if err != nil { … }
//	_, err = p.Up(ctx)
//
// Atlas reads the same files from a directory (os.CopyFS writes them)
// with --dir-format goose. Apply them with one tool only: the first,
// 0001, creates the tables, which a second tool's run would try again.
var Migrations fs.FS

func init() { Migrations = sqlstore.Migrations("postgres") }

// Defaults of [Config].
const (
	DefaultMaxConns    = 16          // Config.MaxConns
	DefaultMaxIdleTime = time.Minute // Config.MaxIdleTime
)

// Store is a [tasks.SQLStore] on PostgreSQL that also listens, with
// LISTEN/NOTIFY: its methods are the SQLStore's, but for [Store.Listen].
//
// A Store is safe for concurrent use, also by engines in several processes
// sharing its database. Its zero value is not usable; call [Open] or [New].
type Store struct {
	*tasks.SQLStore
	owned     bool   // Close closes the database
	stopWakes func() // see sqlstore.DeferWakeups
}

// Open opens the PostgreSQL database that url names (a postgres:// URL or
// keyword/value pairs, as pgx parses them), with a pool of cfg.MaxConns
// connections, migrates it and returns a store that owns the pool: Close
// closes it. The store's tables live in the connections' current schema
// (set search_path in url to choose it). An empty url is refused, as the
// sign of an unset variable: to take every setting from the PG* environment
// variables, pass "postgres://".
func Open(ctx context.Context, url string, cfg *Config) (*Store, error) {
	if url == "" {
		// pgx would read "" as keyword/value pairs, none given, and
		// migrate whichever database the defaults lead to.
		return nil, errors.New("tasks: open PostgreSQL: empty URL")
	}
	var c Config
	if cfg != nil {
		c = *cfg
	}
	switch {
	case c.MaxIdleTime < 0:
		return nil, fmt.Errorf("tasks: open PostgreSQL: Config.MaxIdleTime: got %v, want 0 or more", c.MaxIdleTime)
	case c.MaxIdleTime == 0:
		c.MaxIdleTime = DefaultMaxIdleTime
	}
	switch {
	case c.MaxConns == 0:
		c.MaxConns = DefaultMaxConns
	case c.MaxConns < 2:
		// One connection would deadlock an engine: its listener holds one.
		return nil, fmt.Errorf("tasks: open PostgreSQL: Config.MaxConns: got %d, want at least 2", c.MaxConns)
	}
	pc, err := pgx.ParseConfig(url)
	if err != nil {
		// pgx quotes url in its message with the password redacted.
		return nil, fmt.Errorf("tasks: open PostgreSQL: %w", err)
	}
	db := stdlib.OpenDB(*pc)
	db.SetMaxOpenConns(c.MaxConns)
	db.SetMaxIdleConns(c.MaxConns)
	db.SetConnMaxIdleTime(c.MaxIdleTime)
	s, err := New(db)
	if err == nil {
		err = s.Migrate(ctx) // says "tasks: migrate: …"
	}
	if err == nil {
		err = checkSynchronousClaims(ctx, db)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

// checkSynchronousClaims refuses a value of taskwheel.synchronous_claims
// that PostgreSQL does not read as a boolean: claims read any such value as
// false and would commit without waiting for the disk, the opposite of
// what a misspelt "on" asked for.
func checkSynchronousClaims(ctx context.Context, db *sql.DB) error {
	var v sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT current_setting('taskwheel.synchronous_claims', true)`).Scan(&v); err != nil {
		return fmt.Errorf("tasks: open PostgreSQL: read taskwheel.synchronous_claims: %w", err)
	}
	if !v.Valid || v.String == "" {
		return nil // unset
	}
	var b bool
	if err := db.QueryRowContext(ctx, `SELECT $1::text::boolean`, v.String).Scan(&b); err != nil {
		return fmt.Errorf("tasks: open PostgreSQL: taskwheel.synchronous_claims: got %q, want a boolean such as on or off", v.String)
	}
	return nil
}

// New returns a Store on db, a database the caller opened with the driver
// github.com/jackc/pgx/v5/stdlib and keeps: Close does not close it. New
// does no I/O; call [tasks.SQLStore.Migrate] before using the store.
// Whatever the pool's query exec mode, the store runs its statements that
// find rows by arrays of IDs or keys in [pgx.QueryExecModeDescribeExec],
// so that PostgreSQL plans them for their arguments each time.
func New(db *sql.DB) (*Store, error) {
	if db == nil {
		return nil, errors.New("tasks: new PostgreSQL store: nil db")
	}
	if _, ok := db.Driver().(*stdlib.Driver); !ok {
		return nil, fmt.Errorf("tasks: new PostgreSQL store: want a database opened with github.com/jackc/pgx/v5/stdlib, have driver %T", db.Driver())
	}
	s, err := tasks.NewSQLStore(db, tasks.Postgres)
	if err != nil {
		return nil, err
	}
	// Its statements that find rows by arrays are planned for them each
	// time, not by a generic plan cached per connection (see
	// sqlstore.PlanEachCall): unnamed statements, described, then run.
	// This mode needs none of pgx's caches, which a pool of the caller's
	// may have turned off (QueryExecModeCacheDescribe then fails), and
	// reads results in binary (QueryExecModeExec reads them as text, and
	// pgx reads timestamps as text only in the ISO DateStyle). Its second
	// round trip cost no drain anything measurable (tasksbench W3, W4).
	sqlstore.PlanEachCall(s, pgx.QueryExecModeDescribeExec)
	// The store sends its inserts' wake-ups itself, after their commit
	// (see store_sql_wake.go in package tasks); Close stops that.
	return &Store{SQLStore: s, stopWakes: sqlstore.DeferWakeups(s)}, nil
}

// Close waits for the wake-ups of the store's inserts to be sent to other
// engines, then closes the database if the store owns it (see [Open]); a
// store from [New] leaves it open, and its inserts then leave their
// wake-ups to the database's trigger. Stop the engines using the store
// first.
func (s *Store) Close() error {
	s.stopWakes()
	if !s.owned {
		return nil
	}
	return s.DB().Close()
}

// Listen implements [tasks.Store.Listen]: it takes a connection of its own from
// the pool, LISTENs on the channel that the migrations' trigger notifies for
// the store's schema, and calls notify for each notification until ctx ends
// or the connection fails; the connection is then closed, not returned to
// the pool.
func (s *Store) Listen(ctx context.Context, listening func(), notify func(tasks.Due)) error {
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		return fmt.Errorf("tasks: listen: %w", err)
	}
	defer conn.Close()
	var listenErr error
	// Returning driver.ErrBadConn makes database/sql close the connection,
	// which is still listening, instead of pooling it.
	conn.Raw(func(dc any) error {
		listenErr = listen(ctx, dc, listening, notify)
		return driver.ErrBadConn
	})
	return fmt.Errorf("tasks: listen: %w", listenErr)
}

// notifyChannel names the channel that the triggers of migrations 0006,
// 0021 and 0022 (in package tasks) notify for the tables of the current
// schema: a hash of the schema's name keeps it within PostgreSQL's 63
// bytes for any name.
const notifyChannel = `SELECT 'taskwheel_' || left(md5(current_schema()), 16)`

// listen LISTENs on dc, a connection of stdlib, and calls notify for each
// notification, whose payload (migrations 0021 and 0022, in package tasks)
// is the earliest run time in Unix microseconds of the tasks that one
// statement made pending and that task's ID (which may hold spaces),
// separated by a space, then, when the statement's tasks fall due at
// different times, a space and the latest:
// for that, notify is called again with a Due without an ID at the latest,
// which asks the engine to read the store's upcoming tasks again.
func listen(ctx context.Context, dc any, listening func(), notify func(tasks.Due)) error {
	pc, ok := dc.(interface{ Conn() *pgx.Conn })
	if !ok {
		return fmt.Errorf("want a connection of github.com/jackc/pgx/v5/stdlib, have %T", dc)
	}
	c := pc.Conn()
	var channel string
	if err := c.QueryRow(ctx, notifyChannel).Scan(&channel); err != nil {
		return err
	}
	if _, err := c.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	listening()
	for {
		n, err := c.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		first, last, ok := parsePayload(n.Payload)
		if !ok {
			continue // not ours
		}
		notify(first)
		if !last.IsZero() {
			notify(tasks.Due{RunAt: last})
		}
	}
}

// parsePayload returns what a notification's payload says: the earliest
// task due, and the latest due time if others are due later, else zero.
// The ID is the text between the first space and the latest due time,
// spaces and all (tasks stored by the app's SQL may have any ID); a last
// word that is no time later than the earliest is part of the ID.
func parsePayload(p string) (first tasks.Due, last time.Time, ok bool) {
	micros, id, ok := strings.Cut(p, " ")
	if !ok || id == "" {
		return first, last, false
	}
	lo, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return first, last, false
	}
	if i := strings.LastIndexByte(id, ' '); i > 0 {
		if hi, err := strconv.ParseInt(id[i+1:], 10, 64); err == nil && hi > lo {
			id, last = id[:i], time.UnixMicro(hi).UTC()
		}
	}
	return tasks.Due{ID: id, RunAt: time.UnixMicro(lo).UTC()}, last, true
}
