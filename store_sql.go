package tasks

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3"
)

// Dialect is the SQL dialect of an [SQLStore]'s database.
type Dialect int

// The dialects an SQLStore speaks.
const (
	// SQLite is SQLite 3.37 or later, through github.com/mattn/go-sqlite3.
	SQLite Dialect = iota + 1
	// Postgres is PostgreSQL, through github.com/jackc/pgx/v5/stdlib.
	Postgres
)

// SQLStore is a [Store] in an SQL database: an SQLite file, the default, or
// PostgreSQL, which engines in several processes can share. Its tables are
// named taskwheel_* so that they can live beside the application's own;
// [SQLStore.Migrate] creates them.
//
// Its clock is the database's: PostgreSQL's now(), and for SQLite, an
// in-process database, this process's clock. Times are stored in UTC to the
// microsecond: as Unix microseconds in SQLite, as timestamptz in PostgreSQL.
// A task's Data is stored byte for byte (BLOB, bytea). PostgreSQL text holds
// neither NUL bytes nor invalid UTF-8, so there free text containing them (a
// LastError, an attempt's Response and Error, an endpoint's URL,
// Description, EnabledEvents and secrets) is stored with each replaced by
// U+FFFD. An endpoint's EnabledEvents are kept as a JSON array (jsonb in
// PostgreSQL), in order; attempts in a table of their own, in the order
// stored, without foreign keys, so that they outlive deleted endpoints.
//
// An SQLStore is safe for concurrent use, also by engines in several
// processes sharing its database. Its zero value is not usable; call
// [OpenSQLite] or [NewSQLStore].
type SQLStore struct {
	db      *sqlx.DB // for writes
	read    *sqlx.DB // for reads: db, or OpenSQLite's read-only pool
	dialect Dialect
	owned   bool             // Close closes db and read
	now     func() time.Time // SQLite's clock; PostgreSQL's is the server's

	// OpenSQLite's checkpointer goroutine, which Close stops.
	stopCheckpoints chan struct{}
	stopOnce        sync.Once
	checkpointsDone chan struct{}
}

// NewSQLStore returns an SQLStore on db, a database of dialect d that the
// caller opened and keeps: Close does not close it. Open PostgreSQL with the
// driver github.com/jackc/pgx/v5/stdlib. Open SQLite as [OpenSQLite] does,
// in WAL mode with a busy timeout, _txlock=immediate and one open
// connection, or use OpenSQLite. NewSQLStore does no I/O; call
// [SQLStore.Migrate] before using the store.
func NewSQLStore(db *sql.DB, d Dialect) (*SQLStore, error) {
	var driver string // as sqlx knows it, to rebind placeholders
	switch d {
	case SQLite:
		driver = "sqlite3"
	case Postgres:
		driver = "pgx"
	default:
		return nil, fmt.Errorf("tasks: new SQL store: unknown dialect %d", d)
	}
	if db == nil {
		return nil, errors.New("tasks: new SQL store: nil db")
	}
	x := sqlx.NewDb(db, driver)
	return &SQLStore{db: x, read: x, dialect: d, now: time.Now}, nil
}

// OpenSQLite opens the SQLite database file at path (a file name, not a
// URI), creating it if needed, migrates it and returns a store that owns it:
// Close closes it. A file it creates, and the -wal and -shm files beside
// it, only their owner may read and write (0600): they hold endpoints'
// signing secrets. The database is in WAL mode with a busy timeout of 10
// seconds; the store writes through one connection and reads through a pool
// of read-only ones. For a store in memory, use [NewMemoryStore].
func OpenSQLite(path string) (*SQLStore, error) {
	if path == "" || path == ":memory:" {
		return nil, errors.New("tasks: open SQLite: want the path of a file")
	}
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("tasks: open SQLite %s: %w", path, err)
	}
	// The write pool has one connection, so that this process's writers queue
	// in Go instead of contending for SQLite's lock. Its settings:
	//   - WAL, set by sqliteWAL below: readers and the writer do not block
	//     each other.
	//   - synchronous=NORMAL: a commit survives a crash of the process; in
	//     WAL mode it can be lost only with the machine, and never corrupts.
	//   - busy_timeout of 10 s: a writer in another process makes this one
	//     wait, not fail with "database is locked".
	//   - _txlock=immediate: a transaction takes the write lock at BEGIN,
	//     where the busy timeout applies, not when its first write would
	//     upgrade it, where SQLite fails at once.
	//   - foreign_keys on, for tables the application keeps beside ours.
	//   - a cache of 64 prepared statements per connection: preparing each
	//     query anew would cost more than running most of them.
	//   - no automatic checkpoints (see sqliteDriver): the store's own
	//     goroutine checkpoints the WAL through a connection of its own.
	write, err := sql.Open(sqliteDriver(), sqliteDSN(path,
		"_synchronous=NORMAL&_busy_timeout=10000&_txlock=immediate&_foreign_keys=on&_stmt_cache_size=64"))
	if err != nil {
		return nil, fmt.Errorf("tasks: open SQLite %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	if err := sqliteWAL(context.Background(), write); err != nil {
		write.Close()
		return nil, fmt.Errorf("tasks: open SQLite %s: %w", path, err)
	}
	// Reads (Get, List, Upcoming) use a pool of read-only connections, which
	// WAL lets run alongside the writer.
	read, err := sql.Open(sqliteDriver(), sqliteDSN(path, "mode=ro&_busy_timeout=10000&_stmt_cache_size=64"))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("tasks: open SQLite %s: %w", path, err)
	}
	s := &SQLStore{
		db:      sqlx.NewDb(write, "sqlite3"),
		read:    sqlx.NewDb(read, "sqlite3"),
		dialect: SQLite,
		owned:   true,
		now:     time.Now,
	}
	if err := s.Migrate(context.Background()); err != nil {
		s.Close()
		return nil, err
	}
	checkpointer, err := sql.Open(sqliteDriver(), sqliteDSN(path, "_busy_timeout=10000"))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("tasks: open SQLite %s: %w", path, err)
	}
	s.stopCheckpoints, s.checkpointsDone = make(chan struct{}), make(chan struct{})
	go s.checkpoint(checkpointer)
	return s, nil
}

// createPrivate creates an empty file at path, readable and writable by its
// owner only, unless a file is there. An empty file is an empty SQLite
// database, which SQLite then uses as it is, and SQLite gives the -wal and
// -shm files it creates beside a database the database's permissions: all
// three stay private to the owner, as endpoints' signing secrets must. (By
// itself, SQLite would create them readable by all, 0644.) An existing file
// keeps its permissions.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// sqliteWAL puts the database of db in WAL mode, which it keeps: the
// connections opened later, in this process or another, use it. A new
// database is switched by the first connection that gets there; the others
// find it switched.
func sqliteWAL(ctx context.Context, db *sql.DB) error {
	var mode string
	err := retrySQLiteBusy(ctx, func() error {
		return db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode)
	})
	if err != nil {
		return fmt.Errorf("set WAL mode: %w", err)
	}
	if mode != "wal" {
		return fmt.Errorf("set WAL mode: the database stays in %s mode", mode)
	}
	return nil
}

// sqliteBusyTimeout is how long OpenSQLite's connections wait for another
// connection's lock, and how long retrySQLiteBusy retries.
const sqliteBusyTimeout = 10 * time.Second

// retrySQLiteBusy calls f until it returns anything but SQLite's
// SQLITE_BUSY ("database is locked"), ctx ends or sqliteBusyTimeout passes.
//
// It is for the few statements that SQLite fails at once instead of waiting
// in its busy handler: those that read the database and then need to write
// it, where two connections doing so at once would each wait for the other
// to stop reading, so SQLite fails one. Switching a new database to WAL
// mode is one (it reads the file header, then rewrites it): two processes
// opening a new file at once both do it. Retrying from the start, without
// the read, then succeeds.
func retrySQLiteBusy(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(sqliteBusyTimeout)
	wait := time.Millisecond
	for {
		err := f()
		if se := (sqlite3.Error{}); !errors.As(err, &se) || se.Code != sqlite3.ErrBusy || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// sqliteDriver returns the name of the SQLite driver that OpenSQLite uses:
// mattn/go-sqlite3 with automatic checkpoints off. SQLite would otherwise
// checkpoint the WAL inside a writer's commit, every thousand pages, and
// stall that commit for milliseconds: a claim of a task that is due.
func sqliteDriver() string {
	registerSQLite.Do(func() {
		sql.Register(sqliteDriverName, &sqlite3.SQLiteDriver{
			ConnectHook: func(c *sqlite3.SQLiteConn) error {
				_, err := c.Exec("PRAGMA wal_autocheckpoint = 0", nil)
				return err
			},
		})
	})
	return sqliteDriverName
}

const sqliteDriverName = "taskwheel-sqlite3"

var registerSQLite sync.Once

// checkpointInterval is how often OpenSQLite's store checkpoints its WAL.
const checkpointInterval = time.Second

// checkpoint is the checkpointer goroutine of OpenSQLite's store. Every
// checkpointInterval, and once more when Close stops it, it copies the WAL
// into the database with a PASSIVE checkpoint, which does not block the
// writer, so that the WAL stays small.
func (s *SQLStore) checkpoint(db *sql.DB) {
	defer close(s.checkpointsDone)
	defer db.Close()
	tick := time.NewTicker(checkpointInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-s.stopCheckpoints:
			return // closing the last connection checkpoints the WAL
		}
		// A failure (a busy database) is retried at the next tick.
		db.Exec("PRAGMA wal_checkpoint(PASSIVE)")
	}
}

// sqliteDSN returns the URI that opens the file at path with params.
func sqliteDSN(path, params string) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return "file:" + esc.Replace(path) + "?" + params
}

// Close closes the database if the store owns it (see [OpenSQLite]); a
// store from [NewSQLStore] leaves it open. Stop the engines using the store
// first.
func (s *SQLStore) Close() error {
	if !s.owned {
		return nil
	}
	if s.stopCheckpoints != nil {
		s.stopOnce.Do(func() { close(s.stopCheckpoints) })
		<-s.checkpointsDone
	}
	return errors.Join(s.db.Close(), s.read.Close())
}

// Durable reports true: a task stored in an SQLStore is in its database.
func (s *SQLStore) Durable() bool { return true }

// DB returns the database the store writes to, for transactions that insert
// tasks with [Engine.EnqueueTx]. A database from [OpenSQLite] has a single
// connection for writing: while a transaction on it is open, any other write
// to the store waits for it to end, so do not enqueue outside the
// transaction while it is open.
func (s *SQLStore) DB() *sql.DB { return s.db.DB }

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
		// retrySQLiteBusy) if another process does so too.
		err = retrySQLiteBusy(ctx, func() (err error) {
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

// Queries.
//
// A query used by both dialects is written with ? placeholders, rebound for
// PostgreSQL. Where the dialects differ, each has its own: PostgreSQL's reads
// the server's clock with now(); SQLite's takes the store's clock as its last
// parameter (see args) and numbers its parameters as PostgreSQL does.

// taskColumns are the columns of a taskRow.
const taskColumns = `id, app_id, event_type, state, data, scheduled_run_time, run_at,
	attempts, replayed_after, max_attempts, timeout, lease_expires_at, cancel_requested, last_error,
	endpoint_id, idempotency_key, created_at, updated_at, completed_at`

// taskRow is a row of taskwheel_tasks.
type taskRow struct {
	ID               string
	AppID            string
	EventType        string
	State            State
	Data             []byte
	ScheduledRunTime sqlTime
	RunAt            sqlTime
	Attempts         int
	ReplayedAfter    int
	MaxAttempts      int
	Timeout          int64 // microseconds
	LeaseExpiresAt   sqlTime
	CancelRequested  bool
	LastError        string
	EndpointID       *string
	IdempotencyKey   sql.NullString
	CreatedAt        sqlTime
	UpdatedAt        sqlTime
	CompletedAt      sqlTime
}

// dest returns the fields of r in the order of taskColumns, to scan into.
// (Scanning by hand, not by reflection as sqlx does, is a fifth of the cost
// of a claim.)
func (r *taskRow) dest() []any {
	return []any{&r.ID, &r.AppID, &r.EventType, &r.State, &r.Data, &r.ScheduledRunTime, &r.RunAt,
		&r.Attempts, &r.ReplayedAfter, &r.MaxAttempts, &r.Timeout, &r.LeaseExpiresAt, &r.CancelRequested, &r.LastError,
		&r.EndpointID, &r.IdempotencyKey, &r.CreatedAt, &r.UpdatedAt, &r.CompletedAt}
}

func (r *taskRow) task() *Task {
	t := &Task{
		ID:               r.ID,
		AppID:            r.AppID,
		EventType:        r.EventType,
		State:            r.State,
		ScheduledRunTime: r.ScheduledRunTime.ptr(),
		EndpointID:       r.EndpointID,
		CreatedAt:        r.CreatedAt.t,
		UpdatedAt:        r.UpdatedAt.t,
		Data:             r.Data,
		Attempts:         r.Attempts,
		ReplayedAfter:    r.ReplayedAfter,
		MaxAttempts:      r.MaxAttempts,
		LastError:        r.LastError,
		CompletedAt:      r.CompletedAt.ptr(),
		IdempotencyKey:   r.IdempotencyKey.String,
		Timeout:          time.Duration(r.Timeout) * time.Microsecond,
		CancelRequested:  r.CancelRequested,
		LeaseExpiresAt:   r.LeaseExpiresAt.ptr(),
	}
	if r.State.pending() {
		t.NextAttemptAt = r.RunAt.ptr()
	}
	return t
}

// sqlTime scans a time as either dialect stores it: SQLite as Unix
// microseconds, PostgreSQL as timestamptz.
type sqlTime struct {
	t     time.Time
	valid bool // not NULL
}

func (st *sqlTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*st = sqlTime{}
	case int64:
		*st = sqlTime{time.UnixMicro(v).UTC(), true}
	case time.Time:
		*st = sqlTime{v.UTC().Truncate(time.Microsecond), true}
	default:
		return fmt.Errorf("scan %T as a time", src)
	}
	return nil
}

func (st sqlTime) ptr() *time.Time {
	if !st.valid {
		return nil
	}
	return &st.t
}

// pick returns the query for the store's dialect.
func (s *SQLStore) pick(sqlite, postgres string) string {
	if s.dialect == Postgres {
		return postgres
	}
	return sqlite
}

// args returns args followed, for SQLite, by the store's clock.
func (s *SQLStore) args(args ...any) []any {
	if s.dialect == SQLite {
		return append(args, s.now().UnixMicro())
	}
	return args
}

// timeArg returns t as the store's dialect stores it.
func (s *SQLStore) timeArg(t time.Time) any {
	if s.dialect == SQLite {
		return t.UnixMicro()
	}
	return t.UTC().Truncate(time.Microsecond)
}

// storable reports whether the database can take s as text: PostgreSQL's
// text takes neither NUL bytes nor invalid UTF-8.
func (s *SQLStore) storable(str string) bool {
	return s.dialect != Postgres || utf8.ValidString(str) && !strings.Contains(str, "\x00")
}

// text returns str as the database can store it (see storable).
func (s *SQLStore) text(str string) string {
	if s.storable(str) {
		return str
	}
	return strings.ToValidUTF8(strings.ReplaceAll(str, "\x00", "\uFFFD"), "\uFFFD")
}

// queryer is a *sql.DB, *sql.Tx or *sql.Conn.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// execer is a *sql.DB, *sql.Tx or *sql.Conn.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// queryRows runs query, which returns taskColumns.
func queryRows(ctx context.Context, q queryer, query string, args ...any) ([]taskRow, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var rs []taskRow
	for rows.Next() {
		rs = append(rs, taskRow{})
		if err := rows.Scan(rs[len(rs)-1].dest()...); err != nil {
			return nil, err
		}
	}
	return rs, rows.Err()
}

// queryTasks runs query, which returns taskColumns.
func queryTasks(ctx context.Context, q queryer, query string, args ...any) ([]*Task, error) {
	rs, err := queryRows(ctx, q, query, args...)
	if err != nil {
		return nil, err
	}
	ts := make([]*Task, len(rs))
	for i := range rs {
		ts[i] = rs[i].task()
	}
	return ts, nil
}

// queryTask runs query, which returns taskColumns of at most one task, and
// returns ErrNotFound when it returns none.
func queryTask(ctx context.Context, q queryer, query string, args ...any) (*Task, error) {
	ts, err := queryTasks(ctx, q, query, args...)
	switch {
	case err != nil:
		return nil, err
	case len(ts) == 0:
		return nil, ErrNotFound
	}
	return ts[0], nil
}

const (
	insertSQLite = `INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data,
	scheduled_run_time, run_at, max_attempts, timeout, idempotency_key, created_at, updated_at)
VALUES (?1, ?2, ?3, 'scheduled', ?4, ?5, max(coalesce(?5, ?9), ?9), ?6, ?7, NULLIF(?8, ''), ?9, ?9)
ON CONFLICT DO NOTHING
RETURNING ` + taskColumns
	insertPostgres = `INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data,
	scheduled_run_time, run_at, max_attempts, timeout, idempotency_key, created_at, updated_at)
VALUES ($1, $2, $3, 'scheduled', $4, $5, GREATEST($5, now()), $6, $7, NULLIF($8, ''), now(), now())
ON CONFLICT DO NOTHING
RETURNING ` + taskColumns
	getByKey = `SELECT ` + taskColumns + ` FROM taskwheel_tasks WHERE app_id = ? AND idempotency_key = ?`
)

// Insert implements [Store].
//
// Should the server end the connection after it committed the insert but
// before its answer came, retryLost runs it again; that second run finds the
// task stored as sent and returns it, as the first would have.
func (s *SQLStore) Insert(ctx context.Context, t *Task) (got *Task, err error) {
	retry := false
	err = s.retryLost(ctx, s.db, func(q dbOrConn) error {
		if retry {
			if got, err = s.storedAsSent(ctx, q, t); !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		retry = true
		got, err = s.insert(ctx, q, t)
		return err
	})
	return got, err
}

// storedAsSent returns the task stored under t's ID if an insert of t
// stored it: the same app, event type, data, scheduled run time, max
// attempts, timeout and idempotency key. Otherwise it returns ErrNotFound.
//
// Only a retry of an insert whose answer was lost (see retryLost) asks it:
// a task's ID is a new random UUID, so that a task stored under it as sent
// is the one that first run stored, and not another task's.
func (s *SQLStore) storedAsSent(ctx context.Context, q queryer, t *Task) (*Task, error) {
	got, err := queryTask(ctx, q, s.db.Rebind(getTask), t.ID)
	if err != nil {
		return nil, err
	}
	sameTime := func(a, b *time.Time) bool {
		return a == nil && b == nil || a != nil && b != nil && a.Equal(b.Truncate(time.Microsecond))
	}
	if got.AppID != t.AppID || got.EventType != t.EventType || !bytes.Equal(got.Data, t.Data) ||
		!sameTime(got.ScheduledRunTime, t.ScheduledRunTime) || got.MaxAttempts != t.MaxAttempts ||
		got.Timeout != t.Timeout.Truncate(time.Microsecond) || got.IdempotencyKey != t.IdempotencyKey {
		return nil, ErrNotFound
	}
	return got, nil
}

// InsertTx implements [TxStore]: it inserts t inside tx, a transaction on the
// store's database, so that t exists if and only if tx commits. A duplicate
// idempotency key gives the existing task and ErrDuplicate, as Insert does;
// tx remains usable.
func (s *SQLStore) InsertTx(ctx context.Context, tx *sql.Tx, t *Task) (*Task, error) {
	return s.insert(ctx, tx, t)
}

func (s *SQLStore) insert(ctx context.Context, q queryer, t *Task) (*Task, error) {
	var runAt any
	if t.ScheduledRunTime != nil {
		runAt = s.timeArg(*t.ScheduledRunTime)
	}
	got, err := queryTask(ctx, q, s.pick(insertSQLite, insertPostgres), s.args(t.ID, t.AppID, t.EventType,
		[]byte(t.Data), runAt, t.MaxAttempts, t.Timeout.Microseconds(), t.IdempotencyKey)...)
	if !errors.Is(err, ErrNotFound) {
		if err != nil {
			return nil, fmt.Errorf("tasks: insert task %s: %w", t.ID, err)
		}
		return got, nil
	}
	// A unique constraint turned the task away: its idempotency key's, or
	// its ID's. Doing nothing on either keeps a caller's transaction usable.
	if t.IdempotencyKey != "" {
		got, err := queryTask(ctx, q, s.db.Rebind(getByKey), t.AppID, t.IdempotencyKey)
		if err == nil {
			return got, ErrDuplicate
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("tasks: insert task %s: %w", t.ID, err)
		}
	}
	return nil, invalid("id", "task %s exists", t.ID)
}

// insertManyPostgres inserts a row for each element of its arrays, in
// order, so that of two with one idempotency key the first is stored; %s
// is insertManyPostgresKeyed where a row may be turned away for its key.
const (
	insertManyPostgres = `INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data,
	scheduled_run_time, run_at, max_attempts, timeout, idempotency_key, created_at, updated_at)
SELECT id, app_id, event_type, 'scheduled', data, at, GREATEST(at, now()), max_attempts, timeout,
	NULLIF(key, ''), now(), now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::timestamptz[], $6::int[], $7::bigint[], $8::text[])
	WITH ORDINALITY AS n(id, app_id, event_type, data, at, max_attempts, timeout, key, idx)
ORDER BY idx%s
RETURNING ` + taskColumns
	insertManyPostgresKeyed = `
ON CONFLICT DO NOTHING`
)

// pgUniqueViolation is PostgreSQL's SQLSTATE for a unique constraint
// violated.
const pgUniqueViolation = "23505"

// insertManySQLite inserts rows, %s, of insertManySQLiteRow, which number
// their parameters from the one given (?1 is the store's clock), then %s:
// insertManySQLiteKeyed where a row may be turned away for its key.
const (
	insertManySQLite = `INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data,
	scheduled_run_time, run_at, max_attempts, timeout, idempotency_key, created_at, updated_at)
VALUES %s%s`
	insertManySQLiteKeyed = `
ON CONFLICT DO NOTHING
RETURNING id`
	insertManySQLiteRow = `(?%[1]d, ?%[2]d, ?%[3]d, 'scheduled', ?%[4]d, ?%[5]d, max(coalesce(?%[5]d, ?1), ?1),
	?%[6]d, ?%[7]d, NULLIF(?%[8]d, ''), ?1, ?1)`
	// insertManySQLiteRows bounds the rows of one statement, to stay
	// under SQLite's limit of 32,766 parameters.
	insertManySQLiteRows = 1000
)

// insertManySQLiteQueries holds the insertManySQLite statements of
// insertManySQLiteRows rows, keyed and not.
var insertManySQLiteQueries sync.Map // insertManySQLiteShape → string

type insertManySQLiteShape struct {
	rows  int
	keyed bool
}

// insertManySQLiteQuery returns the insertManySQLite statement for n rows,
// keyed or not.
func insertManySQLiteQuery(n int, keyed bool) string {
	shape := insertManySQLiteShape{n, keyed}
	if q, ok := insertManySQLiteQueries.Load(shape); ok {
		return q.(string)
	}
	rows := make([]string, n)
	for i := range rows {
		b := 2 + 8*i
		rows[i] = fmt.Sprintf(insertManySQLiteRow, b, b+1, b+2, b+3, b+4, b+5, b+6, b+7)
	}
	end := ""
	if keyed {
		end = insertManySQLiteKeyed
	}
	q := fmt.Sprintf(insertManySQLite, strings.Join(rows, ",\n"), end)
	if n == insertManySQLiteRows {
		// Only full statements are kept: the others come in every size,
		// and a thousand of them would hold a hundred megabytes.
		insertManySQLiteQueries.Store(shape, q)
	}
	return q
}

// InsertMany implements [Store]. It inserts the tasks in one transaction:
// on PostgreSQL with one statement, on SQLite with one per thousand tasks.
// As with Insert, a retry after the server ended the connection returns the
// tasks that the first run committed, when it finds them all stored as sent.
func (s *SQLStore) InsertMany(ctx context.Context, ts []*Task) (got []*Task, err error) {
	retry := false
	err = s.retryLost(ctx, s.db, func(q dbOrConn) error {
		if retry {
			if got, err = s.allStoredAsSent(ctx, q, ts); !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		retry = true
		got, err = s.insertMany(ctx, q, ts)
		return err
	})
	return got, err
}

// allStoredAsSent is storedAsSent of each of ts; ErrNotFound if one is not.
func (s *SQLStore) allStoredAsSent(ctx context.Context, q queryer, ts []*Task) ([]*Task, error) {
	got := make([]*Task, len(ts))
	for i, t := range ts {
		var err error
		if got[i], err = s.storedAsSent(ctx, q, t); err != nil {
			return nil, err
		}
	}
	return got, nil
}

func (s *SQLStore) insertMany(ctx context.Context, q dbOrConn, ts []*Task) ([]*Task, error) {
	if s.dialect == Postgres && !slices.ContainsFunc(ts, hasKey) {
		// Only a taken ID can turn a row away, and then the statement
		// stores nothing: one statement is atomic, with no transaction
		// to begin and commit around it. The transaction below finds
		// which ID was taken.
		stored, err := s.insertManyPostgres(ctx, q, ts, false)
		if err == nil {
			return s.holders(ctx, q, ts, stored)
		}
		if pe := (*pgconn.PgError)(nil); !errors.As(err, &pe) || pe.Code != pgUniqueViolation {
			return nil, fmt.Errorf("tasks: insert tasks: %w", err)
		}
	}
	tx, err := q.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("tasks: insert tasks: %w", err)
	}
	defer tx.Rollback()
	var stored, got []*Task
	if s.dialect == Postgres {
		stored, err = s.insertManyPostgres(ctx, tx, ts, true)
	} else {
		stored, err = s.insertManySQLite(ctx, tx, ts)
	}
	if err == nil {
		got, err = s.holders(ctx, tx, ts, stored)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return nil, fmt.Errorf("tasks: insert tasks: %w", err)
	}
	return got, nil
}

// insertManyPostgres inserts ts with q and returns the tasks it stored;
// keyed, it skips the rows whose key is taken.
func (s *SQLStore) insertManyPostgres(ctx context.Context, q queryer, ts []*Task, keyed bool) ([]*Task, error) {
	var (
		ids, apps, events, keys []string
		data                    [][]byte
		ats                     []*time.Time
		maxAttempts, timeouts   []int64 // pgx refuses a value past the column's range
	)
	for _, t := range ts {
		ids = append(ids, t.ID)
		apps = append(apps, t.AppID)
		events = append(events, t.EventType)
		data = append(data, t.Data)
		ats = append(ats, t.ScheduledRunTime)
		maxAttempts = append(maxAttempts, int64(t.MaxAttempts))
		timeouts = append(timeouts, t.Timeout.Microseconds())
		keys = append(keys, t.IdempotencyKey)
	}
	query := fmt.Sprintf(insertManyPostgres, "")
	if keyed {
		query = fmt.Sprintf(insertManyPostgres, insertManyPostgresKeyed)
	}
	return queryTasks(ctx, q, query, ids, apps, events, data, ats, maxAttempts, timeouts, keys)
}

// insertManySQLite inserts ts in tx and returns the tasks it stored. It
// reads back at most their IDs, and none when no task has an idempotency
// key: the rest is what it wrote (reading whole rows back was a fifth of
// the cost).
func (s *SQLStore) insertManySQLite(ctx context.Context, tx *sql.Tx, ts []*Task) ([]*Task, error) {
	now := s.now().UnixMicro()
	inserted := make(map[string]bool, len(ts))
	for chunk := range slices.Chunk(ts, insertManySQLiteRows) {
		args := make([]any, 1, 1+8*len(chunk))
		args[0] = now
		for _, t := range chunk {
			var runAt any
			if t.ScheduledRunTime != nil {
				runAt = s.timeArg(*t.ScheduledRunTime)
			}
			args = append(args, t.ID, t.AppID, t.EventType, []byte(t.Data), runAt, t.MaxAttempts,
				t.Timeout.Microseconds(), t.IdempotencyKey)
		}
		if !slices.ContainsFunc(chunk, hasKey) {
			// Only a taken ID can turn a row away: all are stored, or
			// SQLite undoes the statement and the keyed one below finds
			// which ID it was.
			_, err := tx.ExecContext(ctx, insertManySQLiteQuery(len(chunk), false), args...)
			if err == nil {
				for _, t := range chunk {
					inserted[t.ID] = true
				}
				continue
			}
			if se := (sqlite3.Error{}); !errors.As(err, &se) || se.Code != sqlite3.ErrConstraint {
				return nil, err
			}
		}
		rs, err := tx.QueryContext(ctx, insertManySQLiteQuery(len(chunk), true), args...)
		if err != nil {
			return nil, err
		}
		for rs.Next() {
			var id string
			if err := rs.Scan(&id); err != nil {
				rs.Close()
				return nil, err
			}
			inserted[id] = true
		}
		if err := errors.Join(rs.Err(), rs.Close()); err != nil {
			return nil, err
		}
	}
	stored := make([]*Task, 0, len(inserted))
	at := time.UnixMicro(now).UTC()
	for _, t := range ts {
		if inserted[t.ID] {
			stored = append(stored, newStoredTask(t, at))
		}
	}
	return stored, nil
}

// hasKey reports whether t has an idempotency key.
func hasKey(t *Task) bool { return t.IdempotencyKey != "" }

// newStoredTask returns t as SQLite stores it when inserted at now: what
// reading its row back would return.
func newStoredTask(t *Task, now time.Time) *Task {
	st := &Task{
		ID:             t.ID,
		AppID:          t.AppID,
		EventType:      t.EventType,
		State:          StateScheduled,
		Data:           slices.Clone(t.Data),
		MaxAttempts:    t.MaxAttempts,
		Timeout:        t.Timeout.Truncate(time.Microsecond),
		IdempotencyKey: t.IdempotencyKey,
		CreatedAt:      now,
		UpdatedAt:      now,
		NextAttemptAt:  &now,
	}
	if t.ScheduledRunTime != nil {
		at := time.UnixMicro(t.ScheduledRunTime.UnixMicro()).UTC()
		st.ScheduledRunTime = &at
		if at.After(now) {
			st.NextAttemptAt = &at
		}
	}
	return st
}

// holders returns, for each task of ts, the task stored for it: itself if
// it is among stored, else the one that holds its idempotency key. A task
// with neither was turned away by its ID: an error.
func (s *SQLStore) holders(ctx context.Context, q queryer, ts, stored []*Task) ([]*Task, error) {
	byID := make(map[string]*Task, len(stored))
	for _, t := range stored {
		byID[t.ID] = t
	}
	got := make([]*Task, len(ts))
	for i, t := range ts {
		if got[i] = byID[t.ID]; got[i] != nil {
			continue
		}
		if t.IdempotencyKey != "" {
			var err error
			got[i], err = queryTask(ctx, q, s.db.Rebind(getByKey), t.AppID, t.IdempotencyKey)
			if err == nil {
				continue
			}
			if !errors.Is(err, ErrNotFound) {
				return nil, err
			}
		}
		return nil, invalid("id", "task %s exists", t.ID)
	}
	return got, nil
}

const getTask = `SELECT ` + taskColumns + ` FROM taskwheel_tasks WHERE id = ?`

// Get implements [Store].
func (s *SQLStore) Get(ctx context.Context, id string) (*Task, error) {
	if !s.storable(id) {
		return nil, ErrNotFound
	}
	var t *Task
	err := s.retryLost(ctx, s.read, func(q dbOrConn) (err error) {
		t, err = queryTask(ctx, q, s.read.Rebind(getTask), id)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("tasks: get task %s: %w", id, err)
	}
	return t, err
}

// GetByIdempotencyKey implements [Store].
func (s *SQLStore) GetByIdempotencyKey(ctx context.Context, appID, key string) (*Task, error) {
	if key == "" || !s.storable(appID) || !s.storable(key) {
		return nil, ErrNotFound
	}
	t, err := queryTask(ctx, s.read, s.read.Rebind(getByKey), appID, key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("tasks: get task by idempotency key %q: %w", key, err)
	}
	return t, err
}

// List queries take the six states to select, "" for a state not selected,
// an event type, "" for all, the earliest creation time and the position
// that the listing starts before: the cursor's, or CreatedBefore's when that
// is earlier (no ID comes before "", so (CreatedBefore, "") is before every
// task created at CreatedBefore), or else endOfTime.
const (
	listApp = `SELECT ` + taskColumns + ` FROM taskwheel_tasks
WHERE app_id = ? AND state IN (?, ?, ?, ?, ?, ?) AND (? = '' OR event_type = ?)
	AND created_at >= ? AND (created_at, id) < (?, ?)
ORDER BY created_at DESC, id DESC
LIMIT ?`
	listAll = `SELECT ` + taskColumns + ` FROM taskwheel_tasks
WHERE state IN (?, ?, ?, ?, ?, ?) AND (? = '' OR event_type = ?)
	AND created_at >= ? AND (created_at, id) < (?, ?)
ORDER BY created_at DESC, id DESC
LIMIT ?`
)

var endOfTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// List implements [Store].
func (s *SQLStore) List(ctx context.Context, p ListParams) ([]*Task, string, error) {
	if err := p.normalize(); err != nil {
		return nil, "", err
	}
	at, id := endOfTime, ""
	if p.Cursor != "" {
		at, id, _ = decodeCursor(p.Cursor)
		if !s.storable(id) {
			return nil, "", invalid("cursor", "malformed")
		}
	}
	if !p.CreatedBefore.IsZero() && (p.CreatedBefore.Before(at) || p.CreatedBefore.Equal(at) && id != "") {
		at, id = p.CreatedBefore, ""
	}
	if !s.storable(p.AppID) || !s.storable(p.EventType) {
		return nil, "", nil // no task has them
	}
	query, args := listAll, []any{}
	if p.AppID != "" {
		query, args = listApp, []any{p.AppID}
	}
	for _, st := range States {
		if p.States != nil && !slices.Contains(p.States, st) {
			st = ""
		}
		args = append(args, string(st))
	}
	args = append(args, p.EventType, p.EventType, s.timeArg(p.CreatedSince), s.timeArg(at), id, p.Limit+1)
	var ts []*Task
	err := s.retryLost(ctx, s.read, func(q dbOrConn) (err error) {
		ts, err = queryTasks(ctx, q, s.read.Rebind(query), args...)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("tasks: list tasks: %w", err)
	}
	if len(ts) <= p.Limit {
		return ts, "", nil
	}
	ts = ts[:p.Limit]
	return ts, encodeCursor(ts[len(ts)-1]), nil
}

const (
	claimSQLite = `UPDATE taskwheel_tasks
SET state = 'running', attempts = attempts + 1, lease_expires_at = ?3 + ?2, updated_at = ?3
WHERE id IN (
	SELECT id FROM taskwheel_tasks
	WHERE state IN ('scheduled', 'retrying') AND run_at <= ?3
	ORDER BY run_at, id
	LIMIT ?1)
RETURNING ` + taskColumns
	claimPostgres = `UPDATE taskwheel_tasks
SET state = 'running', attempts = attempts + 1,
	lease_expires_at = now() + $2 * interval '1 microsecond', updated_at = now()
WHERE id IN (
	SELECT id FROM taskwheel_tasks
	WHERE state IN ('scheduled', 'retrying') AND run_at <= now()
	ORDER BY run_at, id
	LIMIT $1
	FOR UPDATE SKIP LOCKED)
RETURNING ` + taskColumns
)

// Claim implements [Store]. On PostgreSQL, concurrent claims skip each
// other's tasks instead of waiting for them.
func (s *SQLStore) Claim(ctx context.Context, limit int, lease time.Duration) ([]*Task, error) {
	if limit <= 0 {
		return nil, nil
	}
	var q queryer = s.db
	if s.dialect == SQLite {
		// Take the writer first, then read the clock (in args): a clock
		// read before waiting for the writer would be stale by the wait,
		// and miss the tasks that fell due meanwhile.
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("tasks: claim tasks: %w", err)
		}
		defer conn.Close()
		q = conn
	}
	rs, err := queryRows(ctx, q, s.pick(claimSQLite, claimPostgres), s.args(limit, lease.Microseconds())...)
	if err != nil {
		return nil, fmt.Errorf("tasks: claim tasks: %w", err)
	}
	// RETURNING has no order; run_at still holds when each task was due.
	slices.SortFunc(rs, func(a, b taskRow) int {
		if c := a.RunAt.t.Compare(b.RunAt.t); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	ts := make([]*Task, len(rs))
	for i := range rs {
		ts[i] = rs[i].task()
	}
	return ts, nil
}

// Finish queries. SQLite's takes the store's clock as ?1, then each outcome
// as (id, attempt, state, delay, error, endpoint); PostgreSQL's takes one
// array per column of the outcomes, then one per column of their attempts,
// each attempt naming its outcome by its 1-based place, and records both in
// one statement. An outcome of retrying for a task whose cancellation was
// requested records canceled.
const (
	finishSQLite = `UPDATE taskwheel_tasks AS t SET
	state = CASE WHEN o.state = 'retrying' AND t.cancel_requested THEN 'canceled' ELSE o.state END,
	run_at = CASE WHEN o.state = 'retrying' THEN ?1 + o.delay ELSE t.run_at END,
	completed_at = CASE WHEN o.state = 'retrying' AND NOT t.cancel_requested THEN NULL ELSE ?1 END,
	last_error = CASE WHEN o.err = '' THEN t.last_error ELSE o.err END,
	endpoint_id = CASE WHEN o.endpoint = '' THEN t.endpoint_id ELSE o.endpoint END,
	lease_expires_at = NULL,
	updated_at = ?1
FROM (SELECT column1 AS id, column2 AS attempt, column3 AS state, column4 AS delay,
	column5 AS err, column6 AS endpoint FROM (VALUES %s)) AS o
WHERE t.id = o.id AND t.attempts = o.attempt AND t.state = 'running'
RETURNING id`
	finishSQLiteRow = `(?, ?, ?, ?, ?, ?)`

	finishPostgres = `WITH o AS (
	SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::bigint[], $5::text[], $6::text[])
		WITH ORDINALITY AS o(id, attempt, state, delay, err, endpoint, idx)
), u AS (
	UPDATE taskwheel_tasks AS t SET
		state = CASE WHEN o.state = 'retrying' AND t.cancel_requested THEN 'canceled' ELSE o.state END,
		run_at = CASE WHEN o.state = 'retrying' THEN now() + o.delay * interval '1 microsecond' ELSE t.run_at END,
		completed_at = CASE WHEN o.state = 'retrying' AND NOT t.cancel_requested THEN NULL ELSE now() END,
		last_error = CASE WHEN o.err = '' THEN t.last_error ELSE o.err END,
		endpoint_id = CASE WHEN o.endpoint = '' THEN t.endpoint_id ELSE o.endpoint END,
		lease_expires_at = NULL,
		updated_at = now()
	FROM o
	WHERE t.id = o.id AND t.attempts = o.attempt AND t.state = 'running'
	RETURNING o.idx, o.id
), a AS (
	INSERT INTO taskwheel_attempts (` + attemptColumns + `)
	SELECT u.id, a.number, a.endpoint_id, a.started_at, a.duration, a.status_code, a.response, a.error
	FROM unnest($7::bigint[], $8::int[], $9::text[], $10::timestamptz[], $11::bigint[], $12::int[], $13::text[], $14::text[])
		WITH ORDINALITY AS a(outcome, number, endpoint_id, started_at, duration, status_code, response, error, ord)
	JOIN u ON u.idx = a.outcome
	ORDER BY a.ord
)
SELECT idx FROM u`
)

// maxFinishRows bounds the outcomes of one Finish statement, to stay under
// SQLite's limit on parameters.
const maxFinishRows = 1000

// Finish implements [Store]. It records the outcomes, and the attempts of
// those that apply, in batches of up to maxFinishRows: on PostgreSQL each
// batch is one statement; on SQLite, one transaction of two. Of two
// outcomes for one attempt, only the first can apply. An attempt is stored
// in the history of its outcome's task, whatever its TaskID says.
//
// On PostgreSQL a batch locks its rows in no particular order. That cannot
// deadlock with the other writers of several tasks at once, which skip
// locked rows instead of waiting for them (Claim, Rescue, Extend); two
// engines' batches share a row only when an expired lease's late outcome
// meets the new attempt's, and should two such meet crosswise, PostgreSQL
// ends one of them and Finish is retried.
func (s *SQLStore) Finish(ctx context.Context, outs []Outcome) ([]bool, error) {
	applied := make([]bool, len(outs))
	seen := make(map[Lease]bool, len(outs))
	var order []int
	for i, o := range outs {
		if l := (Lease{o.ID, o.Attempt}); !seen[l] {
			seen[l] = true
			order = append(order, i)
		}
	}
	for len(order) > 0 {
		batch := order[:min(len(order), maxFinishRows)]
		order = order[len(batch):]
		finish := s.finishSQLiteBatch
		if s.dialect == Postgres {
			finish = s.finishPostgresBatch
		}
		if err := finish(ctx, outs, batch, applied); err != nil {
			return nil, fmt.Errorf("tasks: finish tasks: %w", err)
		}
	}
	return applied, nil
}

func (s *SQLStore) finishSQLiteBatch(ctx context.Context, outs []Outcome, batch []int, applied []bool) error {
	args := make([]any, 0, 1+6*len(batch))
	args = append(args, s.now().UnixMicro())
	byID := make(map[string]int, len(batch))
	for _, i := range batch {
		o := outs[i]
		byID[o.ID] = i
		args = append(args, o.ID, o.Attempt, string(o.State), o.Delay.Microseconds(), o.Error, o.EndpointID)
	}
	query := fmt.Sprintf(finishSQLite, strings.Repeat(finishSQLiteRow+", ", len(batch)-1)+finishSQLiteRow)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	var as []Attempt
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		i := byID[id]
		applied[i] = true
		for _, a := range outs[i].Attempts {
			a.TaskID = id
			as = append(as, a)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	if err := s.insertAttempts(ctx, tx, as); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *SQLStore) finishPostgresBatch(ctx context.Context, outs []Outcome, batch []int, applied []bool) error {
	var (
		ids, states, errs, endpoints []string
		attemptNos                   []int32
		delays                       []int64
		aOutcome, aDuration          []int64
		aNumber, aStatus             []int32
		aEndpoint, aResponse, aError []string
		aStarted                     []time.Time
	)
	for k, i := range batch {
		o := outs[i]
		ids = append(ids, o.ID)
		attemptNos = append(attemptNos, int32(o.Attempt))
		states = append(states, string(o.State))
		delays = append(delays, o.Delay.Microseconds())
		errs = append(errs, s.text(o.Error))
		endpoints = append(endpoints, s.text(o.EndpointID))
		for _, a := range o.Attempts {
			aOutcome = append(aOutcome, int64(k+1))
			aNumber = append(aNumber, int32(a.Number))
			aEndpoint = append(aEndpoint, s.text(a.EndpointID))
			aStarted = append(aStarted, a.StartedAt.UTC().Truncate(time.Microsecond))
			aDuration = append(aDuration, a.Duration.Microseconds())
			aStatus = append(aStatus, int32(a.StatusCode))
			aResponse = append(aResponse, s.text(a.Response))
			aError = append(aError, s.text(a.Error))
		}
	}
	rows, err := s.db.QueryContext(ctx, finishPostgres, ids, attemptNos, states, delays, errs, endpoints,
		aOutcome, aNumber, aEndpoint, aStarted, aDuration, aStatus, aResponse, aError)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k int
		if err := rows.Scan(&k); err != nil {
			return err
		}
		applied[batch[k-1]] = true
	}
	return rows.Err()
}

// Extend queries. PostgreSQL's extends in one statement the leases, given
// as arrays of IDs and attempts, that are still the caller's and not locked
// by another transaction: it skips locked rows, as Claim does, so that it
// never waits for a Finish, which could wait for it in turn.
// extendHeldPostgres then tells which of the leases it skipped are still
// the caller's.
const (
	extendSQLite = `UPDATE taskwheel_tasks SET lease_expires_at = ?4 + ?3
WHERE id = ?1 AND attempts = ?2 AND state = 'running' AND NOT cancel_requested`
	extendPostgres = `WITH mine AS (
	SELECT t.id FROM taskwheel_tasks AS t
	JOIN unnest($1::text[], $2::int[]) AS l(id, attempt) ON t.id = l.id AND t.attempts = l.attempt
	WHERE t.state = 'running' AND NOT t.cancel_requested
	FOR UPDATE OF t SKIP LOCKED
)
UPDATE taskwheel_tasks AS t SET lease_expires_at = now() + $3 * interval '1 microsecond'
FROM mine WHERE t.id = mine.id
RETURNING t.id`
	extendHeldPostgres = `SELECT t.id FROM taskwheel_tasks AS t
JOIN unnest($1::text[], $2::int[]) AS l(id, attempt) ON t.id = l.id AND t.attempts = l.attempt
WHERE t.state = 'running' AND NOT t.cancel_requested`
)

// Extend implements [Store]. On SQLite it extends all leases in one
// transaction. On PostgreSQL, a lease whose row another transaction holds
// at that moment (the caller's own Finish, most likely) is left as it is
// for this once, and revoked only if it is no longer the caller's.
func (s *SQLStore) Extend(ctx context.Context, leases []Lease, d time.Duration) ([]string, error) {
	if len(leases) == 0 {
		return nil, nil
	}
	extend := s.extendSQLite
	if s.dialect == Postgres {
		extend = s.extendPostgres
	}
	kept, err := extend(ctx, leases, d)
	if err != nil {
		return nil, fmt.Errorf("tasks: extend leases: %w", err)
	}
	var revoked []string
	for _, l := range leases {
		if !kept[l.ID] {
			revoked = append(revoked, l.ID)
		}
	}
	return revoked, nil
}

// extendSQLite extends leases and returns the IDs of those still the
// caller's.
func (s *SQLStore) extendSQLite(ctx context.Context, leases []Lease, d time.Duration) (map[string]bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	kept := make(map[string]bool, len(leases))
	for _, l := range leases {
		n, err := exec(ctx, tx, extendSQLite, s.args(l.ID, l.Attempt, d.Microseconds())...)
		if err != nil {
			return nil, err
		}
		kept[l.ID] = n == 1
	}
	return kept, tx.Commit()
}

// extendPostgres extends leases and returns the IDs of those still the
// caller's.
func (s *SQLStore) extendPostgres(ctx context.Context, leases []Lease, d time.Duration) (map[string]bool, error) {
	ids, attempts := make([]string, len(leases)), make([]int32, len(leases))
	for i, l := range leases {
		ids[i], attempts[i] = l.ID, int32(l.Attempt)
	}
	kept, err := queryIDs(ctx, s.db, extendPostgres, ids, attempts, d.Microseconds())
	if err != nil || len(kept) == len(leases) {
		return kept, err
	}
	ids, attempts = ids[:0], attempts[:0]
	for _, l := range leases {
		if !kept[l.ID] {
			ids, attempts = append(ids, l.ID), append(attempts, int32(l.Attempt))
		}
	}
	held, err := queryIDs(ctx, s.db, extendHeldPostgres, ids, attempts)
	for id := range held {
		kept[id] = true
	}
	return kept, err
}

// queryIDs runs query, which returns one column of task IDs, and returns
// them as a set.
func queryIDs(ctx context.Context, q queryer, query string, args ...any) (map[string]bool, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids := make(map[string]bool)
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids[id] = true
	}
	return ids, rows.Err()
}

// exec runs query and returns how many rows it changed.
func exec(ctx context.Context, e execer, query string, args ...any) (int64, error) {
	res, err := e.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Rescue queries take the limit and the error to record. A task whose
// cancellation was requested becomes canceled; one with no attempts left,
// failed; any other, retrying and due now. Each rescued attempt is recorded
// in the task's history as rescuedAttempt records it: SQLite's query returns
// the tasks to record, PostgreSQL's records them itself and counts them.
const (
	rescueSQLite = `UPDATE taskwheel_tasks SET
	state = CASE
		WHEN cancel_requested THEN 'canceled'
		WHEN attempts >= max_attempts THEN 'failed'
		ELSE 'retrying' END,
	run_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN run_at ELSE ?3 END,
	completed_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN ?3 END,
	last_error = ?2,
	lease_expires_at = NULL,
	updated_at = ?3
WHERE id IN (
	SELECT id FROM taskwheel_tasks
	WHERE state = 'running' AND lease_expires_at <= ?3
	ORDER BY lease_expires_at
	LIMIT ?1)
RETURNING id, attempts`
	rescuePostgres = `WITH rescued AS (
	UPDATE taskwheel_tasks SET
		state = CASE
			WHEN cancel_requested THEN 'canceled'
			WHEN attempts >= max_attempts THEN 'failed'
			ELSE 'retrying' END,
		run_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN run_at ELSE now() END,
		completed_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN now() END,
		last_error = $2,
		lease_expires_at = NULL,
		updated_at = now()
	WHERE id IN (
		SELECT id FROM taskwheel_tasks
		WHERE state = 'running' AND lease_expires_at <= now()
		ORDER BY lease_expires_at
		LIMIT $1
		FOR UPDATE SKIP LOCKED)
	RETURNING id, attempts)
INSERT INTO taskwheel_attempts (task_id, number, started_at, error)
SELECT id, attempts, now(), $2 FROM rescued`
)

// Rescue implements [Store]. It rescues tasks and records their attempts in
// one transaction (on PostgreSQL, in one statement).
func (s *SQLStore) Rescue(ctx context.Context, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	var n int
	var err error
	if s.dialect == Postgres {
		var rows int64
		rows, err = exec(ctx, s.db, rescuePostgres, limit, errLeaseExpired)
		n = int(rows)
	} else {
		n, err = s.rescueSQLite(ctx, limit)
	}
	if err != nil {
		return 0, fmt.Errorf("tasks: rescue tasks: %w", err)
	}
	return n, nil
}

func (s *SQLStore) rescueSQLite(ctx context.Context, limit int) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	now := time.UnixMicro(s.now().UnixMicro()).UTC()
	rows, err := tx.QueryContext(ctx, rescueSQLite, limit, errLeaseExpired, now.UnixMicro())
	if err != nil {
		return 0, err
	}
	var as []Attempt
	for rows.Next() {
		var t Task
		if err := rows.Scan(&t.ID, &t.Attempts); err != nil {
			rows.Close()
			return 0, err
		}
		as = append(as, rescuedAttempt(&t, now))
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, err
	}
	if err := s.insertAttempts(ctx, tx, as); err != nil {
		return 0, err
	}
	return len(as), tx.Commit()
}

// Upcoming queries take the window (microseconds) and the limit, and return
// the clock with each task due in the window, or alone if none is.
const (
	upcomingSQLite = `SELECT clock.now, due.id, due.run_at
FROM (SELECT ?3 AS now) AS clock
LEFT JOIN (
	SELECT id, run_at FROM taskwheel_tasks
	WHERE state IN ('scheduled', 'retrying') AND run_at <= ?3 + ?1
	ORDER BY run_at, id
	LIMIT ?2) AS due ON true
ORDER BY due.run_at, due.id`
	upcomingPostgres = `SELECT clock.now, due.id, due.run_at
FROM (SELECT now() AS now) AS clock
LEFT JOIN LATERAL (
	SELECT id, run_at FROM taskwheel_tasks
	WHERE state IN ('scheduled', 'retrying') AND run_at <= clock.now + $1 * interval '1 microsecond'
	ORDER BY run_at, id
	LIMIT $2) AS due ON true
ORDER BY due.run_at, due.id`
)

// Upcoming implements [Store].
func (s *SQLStore) Upcoming(ctx context.Context, within time.Duration, limit int) (time.Time, []Due, error) {
	var rows []struct {
		Now   sqlTime        `db:"now"`
		ID    sql.NullString `db:"id"`
		RunAt sqlTime        `db:"run_at"`
	}
	err := sqlx.SelectContext(ctx, s.read, &rows, s.pick(upcomingSQLite, upcomingPostgres),
		s.args(within.Microseconds(), max(limit, 0))...)
	if err == nil && len(rows) == 0 {
		err = sql.ErrNoRows // never: the query returns the clock at least
	}
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("tasks: list upcoming tasks: %w", err)
	}
	var due []Due
	for _, r := range rows {
		if r.ID.Valid {
			due = append(due, Due{ID: r.ID.String, RunAt: r.RunAt.t})
		}
	}
	return rows[0].Now.t, due, nil
}

// change applies query, an UPDATE of task id that matches only while the
// task's state allows the change, and returns the changed task. When query
// matches nothing, change reads the task and returns it with the error that
// refused gives for its state. If that is errRaced, the task moved in
// between to a state that allows the change, and change tries again.
func (s *SQLStore) change(ctx context.Context, id, query string, args []any, refused func(*Task) error) (*Task, error) {
	if !s.storable(id) {
		return nil, ErrNotFound
	}
	for {
		t, err := queryTask(ctx, s.db, query, s.args(args...)...)
		if !errors.Is(err, ErrNotFound) {
			return t, err
		}
		t, err = queryTask(ctx, s.db, s.db.Rebind(getTask), id)
		if err != nil {
			return nil, err
		}
		if err := refused(t); !errors.Is(err, errRaced) {
			return t, err
		}
	}
}

// errRaced means the task changed state during [SQLStore.change].
var errRaced = errors.New("task changed")

// Cancel queries take the task's ID.
const (
	cancelSQLite = `UPDATE taskwheel_tasks SET
	state = CASE WHEN state = 'running' THEN 'running' ELSE 'canceled' END,
	cancel_requested = (state = 'running'),
	completed_at = CASE WHEN state = 'running' THEN NULL ELSE ?2 END,
	updated_at = ?2
WHERE id = ?1 AND (state IN ('scheduled', 'retrying') OR state = 'running' AND NOT cancel_requested)
RETURNING ` + taskColumns
	cancelPostgres = `UPDATE taskwheel_tasks SET
	state = CASE WHEN state = 'running' THEN 'running' ELSE 'canceled' END,
	cancel_requested = (state = 'running'),
	completed_at = CASE WHEN state = 'running' THEN NULL ELSE now() END,
	updated_at = now()
WHERE id = $1 AND (state IN ('scheduled', 'retrying') OR state = 'running' AND NOT cancel_requested)
RETURNING ` + taskColumns
)

// Cancel implements [Store].
func (s *SQLStore) Cancel(ctx context.Context, id string) (*Task, error) {
	t, err := s.change(ctx, id, s.pick(cancelSQLite, cancelPostgres), []any{id}, func(t *Task) error {
		switch {
		case t.State == StateCanceled, t.State == StateRunning && t.CancelRequested:
			return nil // nothing to do
		case t.State.Terminal():
			return ErrInvalidState
		}
		return errRaced
	})
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalidState) {
		return nil, fmt.Errorf("tasks: cancel task %s: %w", id, err)
	}
	return t, err
}

// Reschedule queries take the task's ID and the run time.
const (
	rescheduleSQLite = `UPDATE taskwheel_tasks
SET state = 'scheduled', scheduled_run_time = ?2, run_at = max(?2, ?3), updated_at = ?3
WHERE id = ?1 AND state IN ('scheduled', 'retrying')
RETURNING ` + taskColumns
	reschedulePostgres = `UPDATE taskwheel_tasks
SET state = 'scheduled', scheduled_run_time = $2, run_at = GREATEST($2, now()), updated_at = now()
WHERE id = $1 AND state IN ('scheduled', 'retrying')
RETURNING ` + taskColumns
)

// Reschedule implements [Store].
func (s *SQLStore) Reschedule(ctx context.Context, id string, runAt time.Time) (*Task, error) {
	query := s.pick(rescheduleSQLite, reschedulePostgres)
	t, err := s.change(ctx, id, query, []any{id, s.timeArg(runAt)}, func(t *Task) error {
		if t.State.pending() {
			return errRaced
		}
		return ErrInvalidState
	})
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalidState) {
		return nil, fmt.Errorf("tasks: reschedule task %s: %w", id, err)
	}
	return t, err
}

// Replay queries take the task's ID and the number of attempts to add.
const (
	replaySQLite = `UPDATE taskwheel_tasks
SET state = 'scheduled', max_attempts = attempts + ?2, replayed_after = attempts, cancel_requested = FALSE,
	completed_at = NULL, run_at = ?3, updated_at = ?3
WHERE id = ?1 AND state IN ('completed', 'failed', 'canceled')
RETURNING ` + taskColumns
	replayPostgres = `UPDATE taskwheel_tasks
SET state = 'scheduled', max_attempts = attempts + $2, replayed_after = attempts, cancel_requested = FALSE,
	completed_at = NULL, run_at = now(), updated_at = now()
WHERE id = $1 AND state IN ('completed', 'failed', 'canceled')
RETURNING ` + taskColumns
)

// Replay implements [Store].
func (s *SQLStore) Replay(ctx context.Context, id string, extra int) (*Task, error) {
	t, err := s.change(ctx, id, s.pick(replaySQLite, replayPostgres), []any{id, extra}, func(t *Task) error {
		if t.State.Terminal() {
			return errRaced
		}
		return ErrInvalidState
	})
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalidState) {
		return nil, fmt.Errorf("tasks: replay task %s: %w", id, err)
	}
	return t, err
}

// Listen implements [Notifier] on PostgreSQL: it takes a connection of its
// own from the pool, LISTENs on the channel that the migrations' trigger
// notifies for the store's schema, and calls notify for each notification
// until ctx ends or the connection fails; the connection is then closed, not
// returned to the pool. The database must be opened with the driver
// github.com/jackc/pgx/v5/stdlib. On SQLite, Listen returns ErrNotSupported:
// engines on one SQLite file see each other's tasks at their next poll.
func (s *SQLStore) Listen(ctx context.Context, listening func(), notify func(Due)) error {
	if s.dialect != Postgres {
		return ErrNotSupported
	}
	conn, err := s.db.Conn(ctx)
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

// notifyChannel names the channel that the trigger of migration 0006
// notifies for the tables of the current schema: a hash of the schema's
// name keeps it within PostgreSQL's 63 bytes for any name.
const notifyChannel = `SELECT 'taskwheel_' || left(md5(current_schema()), 16)`

func listen(ctx context.Context, dc any, listening func(), notify func(Due)) error {
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
		micros, id, ok := strings.Cut(n.Payload, " ")
		us, err := strconv.ParseInt(micros, 10, 64)
		if !ok || err != nil {
			continue // not ours
		}
		notify(Due{ID: id, RunAt: time.UnixMicro(us).UTC()})
	}
}

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
		as = append(as, Attempt{
			TaskID:     r.TaskID,
			Number:     r.Number,
			EndpointID: r.EndpointID,
			StartedAt:  r.StartedAt.t,
			Duration:   time.Duration(r.Duration) * time.Microsecond,
			StatusCode: r.StatusCode,
			Response:   r.Response,
			Error:      r.Error,
		})
	}
	return as, nil
}

// Webhook endpoints.

// Endpoint columns: those of an endpointRow. PostgreSQL keeps
// enabled_events as jsonb, SQLite as text; both read it as JSON text.
const (
	endpointColumnsSQLite = `id, app_id, url, description, enabled_events, status,
	secret, previous_secret, previous_secret_expires_at, created_at, updated_at`
	endpointColumnsPostgres = `id, app_id, url, description, enabled_events::text AS enabled_events, status,
	secret, previous_secret, previous_secret_expires_at, created_at, updated_at`
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
// the enabled events, the status, the secret, the previous secret and its
// expiry; updates take the ID and the UpdatedAt they compare and set, then
// the same fields but the app. An update sets updated_at later than it was
// (see nextVersion), so that it never repeats.
const (
	insertEndpointSQLite = `INSERT INTO taskwheel_endpoints (id, app_id, url, description, enabled_events,
	status, secret, previous_secret, previous_secret_expires_at, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
ON CONFLICT DO NOTHING
RETURNING ` + endpointColumnsSQLite
	insertEndpointPostgres = `INSERT INTO taskwheel_endpoints (id, app_id, url, description, enabled_events,
	status, secret, previous_secret, previous_secret_expires_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8, $9, now(), now())
ON CONFLICT DO NOTHING
RETURNING ` + endpointColumnsPostgres
	getEndpointSQLite        = `SELECT ` + endpointColumnsSQLite + ` FROM taskwheel_endpoints WHERE id = ?`
	getEndpointPostgres      = `SELECT ` + endpointColumnsPostgres + ` FROM taskwheel_endpoints WHERE id = $1`
	listEndpointsSQLite      = `SELECT ` + endpointColumnsSQLite + ` FROM taskwheel_endpoints WHERE app_id = ? ORDER BY created_at, id`
	listEndpointsPostgres    = `SELECT ` + endpointColumnsPostgres + ` FROM taskwheel_endpoints WHERE app_id = $1 ORDER BY created_at, id`
	listAllEndpointsSQLite   = `SELECT ` + endpointColumnsSQLite + ` FROM taskwheel_endpoints ORDER BY created_at, id`
	listAllEndpointsPostgres = `SELECT ` + endpointColumnsPostgres + ` FROM taskwheel_endpoints ORDER BY created_at, id`
	updateEndpointSQLite     = `UPDATE taskwheel_endpoints SET url = ?3, description = ?4, enabled_events = ?5,
	status = ?6, secret = ?7, previous_secret = ?8, previous_secret_expires_at = ?9,
	updated_at = max(?10, updated_at + 1)
WHERE id = ?1 AND updated_at = ?2
RETURNING ` + endpointColumnsSQLite
	updateEndpointPostgres = `UPDATE taskwheel_endpoints SET url = $3, description = $4, enabled_events = $5::text::jsonb,
	status = $6, secret = $7, previous_secret = $8, previous_secret_expires_at = $9,
	updated_at = greatest(now(), updated_at + interval '1 microsecond')
WHERE id = $1 AND updated_at = $2
RETURNING ` + endpointColumnsPostgres
	endpointExists = `SELECT count(*) FROM taskwheel_endpoints WHERE id = ?`
	deleteEndpoint = `DELETE FROM taskwheel_endpoints WHERE id = ?`
)

// InsertEndpoint implements [Store].
func (s *SQLStore) InsertEndpoint(ctx context.Context, ep *Endpoint) (*Endpoint, error) {
	events, err := s.enabledEventsArg(ep.EnabledEvents)
	if err != nil {
		return nil, fmt.Errorf("tasks: insert endpoint %s: %w", ep.ID, err)
	}
	got, err := queryEndpoint(ctx, s.db, s.pick(insertEndpointSQLite, insertEndpointPostgres), s.args(ep.ID, ep.AppID,
		s.text(ep.URL), s.text(ep.Description), events, string(ep.Status), s.text(ep.Secret),
		s.text(ep.PreviousSecret), s.expiresArg(ep.PreviousSecretExpiresAt))...)
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
		s.text(ep.Secret), s.text(ep.PreviousSecret), s.expiresArg(ep.PreviousSecretExpiresAt))...)
	if errors.Is(err, ErrNotFound) {
		err = s.conflictOrNotFound(ctx, endpointExists, ep.ID)
	}
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConflict) {
		return nil, fmt.Errorf("tasks: update endpoint %s: %w", ep.ID, err)
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
	n, err := exec(ctx, s.db, s.db.Rebind(deleteEndpoint), id)
	switch {
	case err != nil:
		return fmt.Errorf("tasks: delete endpoint %s: %w", id, err)
	case n == 0:
		return ErrNotFound
	}
	return nil
}

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

// Revoked dashboard sessions.

// Session queries. Each SQLite query takes the store's clock last.
const (
	purgeSessionsSQLite   = `DELETE FROM taskwheel_revoked_sessions WHERE expires_at <= ?`
	purgeSessionsPostgres = `DELETE FROM taskwheel_revoked_sessions WHERE expires_at <= now()`
	revokeSession         = `INSERT INTO taskwheel_revoked_sessions (id, expires_at) VALUES (?, ?)
ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at`
	sessionRevokedSQLite   = `SELECT count(*) FROM taskwheel_revoked_sessions WHERE id = ? AND expires_at > ?`
	sessionRevokedPostgres = `SELECT count(*) FROM taskwheel_revoked_sessions WHERE id = $1 AND expires_at > now()`
)

// RevokeSession implements [Store]. The purge and the revocation are one
// transaction.
func (s *SQLStore) RevokeSession(ctx context.Context, id string, expires time.Time) error {
	if !s.storable(id) {
		return invalid("id", "session ID %q is not valid text", id)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("tasks: revoke session: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, s.pick(purgeSessionsSQLite, purgeSessionsPostgres), s.args()...); err != nil {
		return fmt.Errorf("tasks: revoke session: purge expired: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.db.Rebind(revokeSession), id, s.timeArg(expires)); err != nil {
		return fmt.Errorf("tasks: revoke session: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("tasks: revoke session: %w", err)
	}
	return nil
}

// SessionRevoked implements [Store].
func (s *SQLStore) SessionRevoked(ctx context.Context, id string) (bool, error) {
	if !s.storable(id) {
		return false, nil // no session has it
	}
	var n int
	if err := s.read.GetContext(ctx, &n, s.pick(sessionRevokedSQLite, sessionRevokedPostgres), s.args(id)...); err != nil {
		return false, fmt.Errorf("tasks: read session revocation: %w", err)
	}
	return n > 0, nil
}

// Dashboard counts.

// countTasks takes the app.
const countTasks = `SELECT state, count(*) AS n FROM taskwheel_tasks WHERE app_id = ? GROUP BY state`

// CountTasks implements [Store]. It counts the app's rows, which the index
// taskwheel_tasks_app_list holds.
func (s *SQLStore) CountTasks(ctx context.Context, appID string) (map[State]int, error) {
	counts := make(map[State]int)
	if !s.storable(appID) {
		return counts, nil // no task has it
	}
	var rows []struct {
		State State `db:"state"`
		N     int   `db:"n"`
	}
	if err := sqlx.SelectContext(ctx, s.read, &rows, s.read.Rebind(countTasks), appID); err != nil {
		return nil, fmt.Errorf("tasks: count tasks of %s: %w", appID, err)
	}
	for _, r := range rows {
		counts[r.State] = r.N
	}
	return counts, nil
}

// TaskHistogram queries take the app, since (as the dialect stores times),
// since in Unix microseconds and the bucket in microseconds, and return the
// index of each bucket, a state and its count. Only terminal tasks have a
// completed_at, which the index taskwheel_tasks_completed holds.
const (
	taskHistogramSQLite = `SELECT (completed_at - ?3) / ?4 AS k, state, count(*) AS n
FROM taskwheel_tasks
WHERE app_id = ?1 AND completed_at IS NOT NULL AND completed_at >= ?2
GROUP BY k, state
ORDER BY k`
	taskHistogramPostgres = `SELECT ((extract(epoch FROM completed_at) * 1000000)::bigint - $3) / $4 AS k, state, count(*) AS n
FROM taskwheel_tasks
WHERE app_id = $1 AND completed_at IS NOT NULL AND completed_at >= $2
GROUP BY k, state
ORDER BY k`
)

// TaskHistogram implements [Store].
func (s *SQLStore) TaskHistogram(ctx context.Context, appID string, since time.Time, bucket time.Duration) ([]Bucket, error) {
	since, bucket, err := histogramParams(since, bucket)
	if err != nil {
		return nil, err
	}
	if !s.storable(appID) {
		return nil, nil // no task has it
	}
	var rows []struct {
		K     int64 `db:"k"`
		State State `db:"state"`
		N     int   `db:"n"`
	}
	err = sqlx.SelectContext(ctx, s.read, &rows, s.pick(taskHistogramSQLite, taskHistogramPostgres),
		appID, s.timeArg(since), since.UnixMicro(), bucket.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("tasks: count ended tasks of %s: %w", appID, err)
	}
	var out []Bucket
	for i, r := range rows { // by k, so a bucket's rows are adjacent
		if i == 0 || r.K != rows[i-1].K {
			out = append(out, Bucket{Start: since.Add(time.Duration(r.K) * bucket)})
		}
		out[len(out)-1].add(r.State, r.N)
	}
	return out, nil
}

// countAttempts takes the endpoint and since.
const countAttempts = `SELECT count(*) AS total, coalesce(sum(CASE WHEN error <> '' THEN 1 ELSE 0 END), 0) AS failed
FROM taskwheel_attempts
WHERE endpoint_id = ? AND endpoint_id <> '' AND started_at >= ?`

// CountAttempts implements [Store]. The index taskwheel_attempts_endpoint
// holds an endpoint's attempts by start.
func (s *SQLStore) CountAttempts(ctx context.Context, endpointID string, since time.Time) (total, failed int, err error) {
	if endpointID == "" || !s.storable(endpointID) {
		return 0, 0, nil // no attempt has it
	}
	var row struct {
		Total  int `db:"total"`
		Failed int `db:"failed"`
	}
	if err := sqlx.GetContext(ctx, s.read, &row, s.read.Rebind(countAttempts), endpointID, s.timeArg(since)); err != nil {
		return 0, 0, fmt.Errorf("tasks: count attempts of endpoint %s: %w", endpointID, err)
	}
	return row.Total, row.Failed, nil
}
