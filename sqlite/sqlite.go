// Package sqlite opens a [tasks.SQLStore] on an SQLite file with the
// library's settings, through the driver github.com/mattn/go-sqlite3 (which
// needs cgo): WAL, a busy timeout, one writer beside a pool of readers, and
// a checkpointer off the writer's path, which still makes the WAL restart
// once it is past 64 MB under a steady stream of writes (the file is kept
// for reuse, up to 256 MB) and truncates a WAL left past 64 MB by a burst
// once the store is idle.
//
//	store, err := sqlite.Open("tasks.db", nil)
//	if err != nil { … }
//	defer store.Close()
//	eng, err := tasks.NewEngine(store, nil)
//
// A database the application opened itself can be used through
// [tasks.NewSQLStore] with [tasks.SQLite]. An application that applies its
// schema changes with a tool of its own, such as goose, applies
// [Migrations] with it instead of calling [tasks.SQLStore.Migrate].
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/sqlstore"
)

// Config configures [Open]. A nil *Config means every default.
type Config struct {
	// Synchronous is SQLite's synchronous setting for the store's writes:
	// how hard each commit waits for the disk. "NORMAL": a commit survives
	// a crash of the process; in WAL mode it can be lost only with the
	// machine (a power loss, a kernel crash), and never corrupts the
	// database. "FULL" (or "EXTRA"): each commit is also on the disk before
	// it returns, surviving a power loss, for an fsync a commit. "OFF" is
	// refused: it gives up the durability a [tasks.Store] promises.
	// Defaults to "NORMAL".
	Synchronous string

	// BusyTimeout is how long a connection of the store's readers and
	// writer waits for a lock that another holds (a writer in another
	// process, a checkpoint) before it fails with "database is locked"
	// (the store's checkpointer never waits). Defaults to
	// [DefaultBusyTimeout].
	BusyTimeout time.Duration
}

// Migrations are the tables of package tasks on SQLite, as the migrations
// that [tasks.SQLStore.Migrate] applies, in goose's format, for an
// application that applies them with its own tool: files named
// <version>_<name>.sql in the FS's root, each marked "-- +goose Up", the
// migration as one goose statement, then the statements that record it
// in taskwheel_migrations, as Migrate does. Migrate, Open and
// [tasks.Engine.Start] then find the tables up to date, and refuse them
// once a newer version of package tasks migrated them past this one
// ([tasks.ErrSchemaTooNew]). There are no Down migrations. With goose,
// keep the history in a table of its own, apart from the application's
// migrations:
//
//	p, err := goose.NewProvider(goose.DialectSQLite3, db, sqlite.Migrations,
//		goose.WithTableName("taskwheel_goose_db_version"))
//	if err != nil { … }
//	_, err = p.Up(ctx)
//
// Atlas reads the same files from a directory (os.CopyFS writes them)
// with --dir-format goose. Apply them with one tool only: the first,
// 0001, creates the tables, which a second tool's run would try again.
var Migrations fs.FS

func init() { Migrations = sqlstore.Migrations("sqlite") }

// DefaultBusyTimeout is the default of [Config.BusyTimeout].
const DefaultBusyTimeout = 10 * time.Second

// checkpointInterval is how often a Store checkpoints its WAL.
const checkpointInterval = time.Second

// The checkpointer makes the WAL restart when it holds more than
// restartFrames pages after a checkpoint (see Store.checkpoint); it first
// checkpoints up to catchUpTries more times off the writer's path, until
// one copies at most catchUpFrames, so that the checkpoint on the writer's
// path has about that much left to copy.
const (
	restartFrames = 16384 // 64 MB of 4 KB pages
	catchUpFrames = 256   // 1 MB
	catchUpTries  = 8
)

// walSizeLimit is the size, in bytes, to which SQLite truncates a WAL
// file that grew past it when the WAL restarts (journal_size_limit): four
// times what makes it restart, so that a restart under a heavy stream of
// writes, which finds the file at 64 MB and a second's writes more,
// reuses the file in place instead of truncating it and growing it again.
// A truncation made the first commit after each restart wait for the file
// system to record the new size, on top of the restart itself: in W9's
// retention pass (some 120 MB of WAL a second, a restart a second), the
// commit after the restart took 20 to 40 ms, and W5's lateness during the
// pass had p99 24–27 ms with a limit of 64 MB against 8–11 ms with
// 256 MB (and 10 ms with 128 MB), batches of the pass p99 22–26 ms against
// 8–10 ms (1,000,000 tasks, three runs each, BENCHMARKS.md). A store that
// is idle after a burst gives the space back (see idleTicks).
const walSizeLimit = 4 * restartFrames * 4096

// idleTicks is how many checkpoint ticks in a row must pass without a
// commit (by any connection, of any process: PRAGMA data_version) before
// the checkpointer truncates to nothing a WAL file larger than what makes
// it restart, so that a store that wrote a burst and then idles does not
// keep up to walSizeLimit of WAL. The first commit after a truncation pays
// for growing the file again (about 20 ms measured after a 32 MB WAL, as
// much as a restart that truncates: see walSizeLimit), so a WAL no larger
// than the restart size, all that a steady or a light load leaves, is kept.
const idleTicks = 5

// Store is a [tasks.SQLStore] on an SQLite file that it opened and owns:
// its methods are the SQLStore's, and [Store.Close] closes the file. It
// writes through one connection, so that this process's writers queue in Go
// instead of contending for SQLite's lock, and reads through a pool of
// read-only connections, which WAL lets run alongside the writer.
//
// A Store is safe for concurrent use, also by engines in several processes
// sharing its file. Its zero value is not usable; call [Open].
type Store struct {
	*tasks.SQLStore
	write, read *sql.DB
	path        string // of the database file

	// The checkpointer goroutine, which Close stops.
	stopCheckpoints chan struct{}
	stopOnce        sync.Once
	checkpointsDone chan struct{}
}

// Open opens the SQLite database file at path (a file name, not a URI),
// creating it if needed, migrates it and returns a store that owns it:
// Close closes it. A file it creates, and the -wal and -shm files beside
// it, only their owner may read and write (0600): they hold endpoints'
// signing secrets. For a store in memory, use [tasks.NewMemoryStore].
func Open(path string, cfg *Config) (*Store, error) {
	if path == "" || path == ":memory:" {
		return nil, errors.New("tasks: open SQLite: want the path of a file")
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("tasks: open SQLite %s: %w", path, err)
	}
	s, err := open(path, c)
	if err != nil {
		return nil, fmt.Errorf("tasks: open SQLite %s: %w", path, err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		s.Close()
		return nil, err
	}
	// The checkpointer never waits for a lock: its PASSIVE checkpoints
	// take none that would, and its TRUNCATE checkpoint, which would make
	// writers wait for as long as it did, gives up at once when a reader
	// or a writer is busy.
	//
	// It has one connection, so that PRAGMA data_version compares the
	// database with what that one connection saw last (see idleWAL).
	checkpointer, err := sql.Open(driverName(), dsn(path, "_busy_timeout=0"))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("tasks: open SQLite %s: %w", path, err)
	}
	s.path = path
	s.stopCheckpoints, s.checkpointsDone = make(chan struct{}), make(chan struct{})
	checkpointer.SetMaxOpenConns(1)
	go s.checkpoint(checkpointer)
	return s, nil
}

// withDefaults returns a copy of c, nil meaning every default, with its
// zero fields set to their defaults, or an error naming a field it refuses.
func (c *Config) withDefaults() (Config, error) {
	var out Config
	if c != nil {
		out = *c
	}
	switch strings.ToUpper(out.Synchronous) {
	case "":
		out.Synchronous = "NORMAL"
	case "NORMAL", "FULL", "EXTRA":
		out.Synchronous = strings.ToUpper(out.Synchronous)
	default:
		return Config{}, fmt.Errorf("Config.Synchronous: got %q, want NORMAL, FULL or EXTRA", out.Synchronous)
	}
	switch {
	case out.BusyTimeout == 0:
		out.BusyTimeout = DefaultBusyTimeout
	case out.BusyTimeout < time.Millisecond:
		return Config{}, fmt.Errorf("Config.BusyTimeout: got %v, want at least 1ms", out.BusyTimeout)
	}
	return out, nil
}

// open opens the store's pools on the file at path, creating it if needed.
func open(path string, c Config) (*Store, error) {
	if err := createPrivate(path); err != nil {
		return nil, err
	}
	busy := busyParam(c)
	// The write pool has one connection, so that this process's writers
	// queue in Go instead of contending for SQLite's lock. Its settings:
	//   - WAL, set by setWAL below: readers and the writer do not block
	//     each other.
	//   - synchronous=NORMAL by default (see Config.Synchronous).
	//   - a busy timeout, 10 s by default: a writer in another process makes
	//     this one wait, not fail with "database is locked".
	//   - _txlock=immediate: a transaction takes the write lock at BEGIN,
	//     where the busy timeout applies, not when its first write would
	//     upgrade it, where SQLite fails at once.
	//   - foreign_keys on, for tables the application keeps beside ours.
	//   - a cache of 64 prepared statements per connection: preparing each
	//     query anew would cost more than running most of them.
	//   - no automatic checkpoints (see driverName): the store's own
	//     goroutine checkpoints the WAL through a connection of its own.
	write, err := sql.Open(driverName(), dsn(path,
		"_synchronous="+c.Synchronous+"&"+busy+"&_txlock=immediate&_foreign_keys=on&_stmt_cache_size=64"))
	if err != nil {
		return nil, err
	}
	write.SetMaxOpenConns(1)
	if err := setWAL(context.Background(), write, c.BusyTimeout); err != nil {
		write.Close()
		return nil, err
	}
	// Reads (Get, List, Upcoming) use a pool of read-only connections, which
	// WAL lets run alongside the writer.
	read, err := sql.Open(driverName(), dsn(path, "mode=ro&"+busy+"&_stmt_cache_size=64"))
	if err != nil {
		write.Close()
		return nil, err
	}
	st, err := tasks.NewSQLStore(write, tasks.SQLite)
	if err != nil { // never: write is not nil
		write.Close()
		read.Close()
		return nil, err
	}
	sqlstore.SetReadDB(st, read)
	return &Store{SQLStore: st, write: write, read: read}, nil
}

// busyParam returns the DSN parameter that sets c's busy timeout.
func busyParam(c Config) string {
	return "_busy_timeout=" + strconv.FormatInt(c.BusyTimeout.Milliseconds(), 10)
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

// setWAL puts the database of db in WAL mode, which it keeps: the
// connections opened later, in this process or another, use it. A new
// database is switched by the first connection that gets there; the others
// find it switched, retrying for up to timeout while it is being switched.
func setWAL(ctx context.Context, db *sql.DB, timeout time.Duration) error {
	var mode string
	err := sqlstore.RetryBusy(ctx, timeout, func() error {
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

// driverName returns the name of the SQLite driver that Open uses:
// mattn/go-sqlite3 with automatic checkpoints off. SQLite would otherwise
// checkpoint the WAL inside a writer's commit, every thousand pages, and
// stall that commit for milliseconds: a claim of a task that is due.
func driverName() string {
	register.Do(func() {
		sql.Register(registeredName, &sqlite3.SQLiteDriver{
			ConnectHook: func(c *sqlite3.SQLiteConn) error {
				// Through driver.ExecerContext: without cgo, the driver is
				// a stub whose SQLiteConn has no methods (and which opens
				// no connection, so the hook never runs), and this package
				// still compiles, as CGO_ENABLED=0 go vet of its importers'
				// tests needs.
				e, ok := any(c).(driver.ExecerContext)
				if !ok {
					return errors.New("SQLite connection without ExecContext")
				}
				_, err := e.ExecContext(context.Background(),
					"PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = "+strconv.Itoa(walSizeLimit), nil)
				return err
			},
		})
	})
	return registeredName
}

const registeredName = "taskwheel-sqlite3"

var register sync.Once

// dsn returns the URI that opens the file at path with params.
func dsn(path, params string) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return "file:" + esc.Replace(path) + "?" + params
}

// checkpoint is the store's checkpointer goroutine. Every
// checkpointInterval, and once more when Close stops it, it copies the WAL
// into the database with a PASSIVE checkpoint, which does not block the
// writer, so that the WAL stays small.
//
// SQLite restarts the WAL from its start only when a write transaction
// begins once a checkpoint copied all of it. Under a steady stream of
// writes a checkpoint beside the writer never gets there: the writer
// commits while it copies, and the WAL grows for as long as the stream
// lasts (measured: 20 GB in 90 s of W4, and 19 GB during a retention pass
// deleting ten million tasks), and with it the cost of every read, which
// searches the WAL's index for each page. So when the WAL holds more than
// restartFrames, the checkpointer copies what it can beside the writer,
// then checkpoints the rest on the writer's own connection, where no
// commit can come between the checkpoint and the next write: that write
// restarts the WAL, and SQLite truncates the file to walSizeLimit. Writes
// wait for that last checkpoint, which copies only what was committed
// during the last one beside the writer, no more than about catchUpFrames
// (see catchUp), and syncs the database file: a checkpoint beside the
// writer that does not catch up with it does not sync the database, so
// the pages that the checkpoints before it copied, some 64 MB, are still
// the kernel's to write, and the sync on the writer's path would wait for
// them all (measured in W9's retention pass: the writer held for 34 ms at
// the median, 236 ms at worst, on a loaded machine). The checkpointer
// therefore syncs the database and WAL files itself, beside the writer,
// first (syncFiles): the writer then waits for the sync of what its own
// checkpoint copied (17 ms at the median, 51 ms at worst, in the same
// conditions).
//
// Once the store has had no commit for idleTicks ticks, the checkpointer
// truncates a WAL left past the restart size (see idleTicks).
func (s *Store) checkpoint(db *sql.DB) {
	defer close(s.checkpointsDone)
	defer db.Close()
	tick := time.NewTicker(checkpointInterval)
	defer tick.Stop()
	var idle idleWAL
	for {
		select {
		case <-tick.C:
		case <-s.stopCheckpoints:
			return // closing the last connection checkpoints the WAL
		}
		// A failure (a busy database) is retried at the next tick.
		frames, err := passiveCheckpoint(db)
		if err != nil {
			continue
		}
		if idle.still(dataVersion(db)) && walSize(s.path) > restartFrames*4096 {
			truncateCheckpoint(db)
		}
		if frames <= restartFrames {
			continue
		}
		if catchUp(func() (int, error) { return passiveCheckpoint(db) }, frames) == nil {
			syncFiles(s.path, s.path+"-wal")
			passiveCheckpoint(s.write)
		}
	}
}

// catchUp checkpoints the WAL, with checkpoint, until a checkpoint copies
// at most catchUpFrames, for at most catchUpTries checkpoints, after one
// that left the WAL frames long. A checkpoint copies what the WAL held
// when it began, and the writer commits while it runs: what the next one
// copies, the frames the WAL grew by, was committed during the one
// before. Each takes about as long as what it copies, so, while the
// writer commits slower than a checkpoint copies, each copies a fraction
// of what the one before did. (Before catchUp, the checkpointer stopped at
// the first checkpoint after the one that found the WAL long; the
// checkpoint on the writer's path then had what was committed during it to
// copy, some 1,000 to 3,000 frames while a retention pass deleted, and
// writes waited 10 to 40 ms for it.)
func catchUp(checkpoint func() (frames int, err error), frames int) error {
	for range catchUpTries {
		prev := frames
		var err error
		if frames, err = checkpoint(); err != nil {
			return err
		}
		// Fewer frames than before: the WAL restarted, so nothing was
		// committed during the last checkpoint.
		if frames-prev <= catchUpFrames {
			return nil
		}
	}
	return nil
}

// syncFiles flushes the files at paths to the disk, as fsync does, and
// ignores a failure: it only spares the checkpoint that follows, which
// syncs what it must itself, the wait for the kernel's writes.
func syncFiles(paths ...string) {
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		f.Sync()
		f.Close()
	}
}

// idleWAL tells when the store has had no commit long enough to truncate
// its WAL.
type idleWAL struct {
	version int64 // the data_version the last tick saw
	ticks   int   // ticks in a row that saw version
}

// still records that a tick saw the database at version (PRAGMA
// data_version on the checkpointer's one connection: it changes when
// another connection commits; -1 when it could not be read), and reports
// whether it has seen the same for a multiple of idleTicks ticks in a row:
// a truncation that a reader or a writer prevented is tried again
// idleTicks later.
func (w *idleWAL) still(version int64) bool {
	if version != w.version || version < 0 {
		w.version, w.ticks = version, 0
	}
	w.ticks++
	return version >= 0 && w.ticks%idleTicks == 0
}

// dataVersion returns db's PRAGMA data_version, or -1 if it fails.
func dataVersion(db *sql.DB) int64 {
	var v int64
	if err := db.QueryRow("PRAGMA data_version").Scan(&v); err != nil {
		return -1
	}
	return v
}

// walSize returns the size of the WAL file of the database at path, 0 if
// it has none.
func walSize(path string) int64 {
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		return 0
	}
	return fi.Size()
}

// truncateCheckpoint checkpoints the whole WAL on db and truncates it to
// nothing, unless a reader or a writer is busy: db's busy timeout is 0, so
// it then gives up at once, and is tried again later (see idleWAL).
func truncateCheckpoint(db *sql.DB) {
	var busy, frames, copied int
	db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &frames, &copied)
}

// passiveCheckpoint runs a PASSIVE checkpoint on db and returns the frames
// (pages) in the WAL. It copies all of them into the database unless a
// reader still reads the older ones; one that copies nothing syncs
// nothing and takes microseconds.
func passiveCheckpoint(db *sql.DB) (frames int, err error) {
	var busy, copied int
	err = db.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
	return frames, err
}

// DB returns the database the store writes to, for transactions that insert
// tasks with [tasks.Engine.EnqueueTx]. It has a single connection: while a
// transaction on it is open, any other write to the store waits for it to
// end, so do not enqueue outside the transaction while it is open.
func (s *Store) DB() *sql.DB { return s.write }

// Close stops the checkpointer and closes the database. Stop the engines
// using the store first.
func (s *Store) Close() error {
	if s.stopCheckpoints != nil {
		s.stopOnce.Do(func() { close(s.stopCheckpoints) })
		<-s.checkpointsDone
	}
	return errors.Join(s.write.Close(), s.read.Close())
}
