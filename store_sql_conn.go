package tasks

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"strings"
	"syscall"

	"github.com/jmoiron/sqlx"
)

// PostgreSQL connections that the server ended.
//
// When the server ends connections (pg_terminate_backend, a restart, a
// failover), the pool does not know until it uses them. database/sql hands
// out an idle connection as it is, and pgx pings it first only if it was
// idle for over a second; so a statement may go out on a connection that is
// already gone and fail with SQLSTATE 57P01, though the server takes new
// connections. database/sql and pgx retry by themselves only a statement
// that was never sent (pgx answers driver.ErrBadConn where
// pgconn.SafeToRetry): this one was sent, and for all the client can tell,
// the server may have run it, and committed it, before it ended.
//
// So the store retries, once and on a connection that has just answered a
// ping, the operations that are safe to run twice: reads, and inserts of
// tasks (Insert, InsertMany), which a second run cannot store twice, since
// each task's ID is its primary key. Should the first run have committed
// after all (the server ended the connection between the commit and its
// answer), the second finds the tasks stored under their IDs as sent and
// returns them, as the first would have (see SQLStore.storedAsSent). Other
// writes are not retried: an update, or a COMMIT, whose outcome is unknown
// may have applied.

// dbOrConn is the store's pool, *sqlx.DB, or one connection of it,
// *sqlx.Conn: what an operation that retryLost runs runs on.
type dbOrConn interface {
	sqlx.QueryerContext
	sqlx.ExecerContext
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// retryLost runs op on db and, on PostgreSQL, if op failed because the
// server ended its connection (see connLost), runs it once more on a
// connection of db that has just answered a ping. op must be safe to run
// twice, even when its first run applied (see above).
func (s *SQLStore) retryLost(ctx context.Context, db *sqlx.DB, op func(q dbOrConn) error) error {
	err := op(db)
	if s.dialect != Postgres || !connLost(err) || ctx.Err() != nil {
		return err
	}
	c, cerr := liveConn(ctx, db)
	if cerr != nil {
		return err // the first error says more
	}
	defer c.Close()
	return op(c)
}

// liveConn returns a connection of db that has just answered a ping. A
// connection that does not answer is closed, and the pool drops it (pgx
// answers driver.ErrBadConn); once it has dropped every connection it held,
// it opens a new one.
func liveConn(ctx context.Context, db *sqlx.DB) (*sqlx.Conn, error) {
	for tries := db.Stats().OpenConnections + 1; ; tries-- {
		c, err := db.Connx(ctx)
		if err != nil {
			return nil, err
		}
		if err = c.PingContext(ctx); err == nil {
			return c, nil
		}
		c.Close()
		if tries <= 1 {
			return nil, err
		}
	}
}

// connLost reports whether err says that the connection a statement ran on
// ended: the server ended it (SQLSTATE class 08, connection exception; or
// 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now),
// the socket closed under it, or pgx had closed it (see pgxConnClosed).
func connLost(err error) bool {
	if err == nil {
		return false
	}
	if code := sqlState(err); code != "" {
		return strings.HasPrefix(code, "08") || code == "57P01" || code == "57P02" || code == "57P03"
	}
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || pgxConnClosed(err)
}

// pgxConnClosed reports whether err's chain holds pgx's
// pgconn.ErrConnClosed, by its text, "conn closed": pgx's answer to a
// statement on a connection that it closed because the socket failed, as
// it does to the COMMIT of a transaction whose connection the server ended
// after committing, before its answer came. Matching the text keeps this
// package free of pgx; it is asked only of PostgreSQL's errors.
func pgxConnClosed(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == "conn closed" {
			return true
		}
	}
	return false
}

// Errors of the drivers, told apart without importing them.

// sqlState returns the SQLSTATE code of a PostgreSQL error in err's chain,
// or "" if there is none: an error with the method SQLState, as pgx's
// *pgconn.PgError has.
func sqlState(err error) string {
	var se interface{ SQLState() string }
	if errors.As(err, &se) {
		return se.SQLState()
	}
	return ""
}

// maxDeadlockTries bounds the runs of a transaction that PostgreSQL ended
// to break a deadlock (see retryDeadlock).
const maxDeadlockTries = 3

// retryDeadlock runs op, a transaction, again while PostgreSQL ends it to
// break a deadlock (SQLSTATE 40P01, which rolled it back), at most
// maxDeadlockTries times in all, and not once ctx has ended: its users
// (Claim, the changes of limits, bulk operations) lock rows of several
// tasks in orders that can cross another writer's.
func retryDeadlock(ctx context.Context, op func() error) error {
	for try := 1; ; try++ {
		err := op()
		if try == maxDeadlockTries || sqlState(err) != "40P01" || ctx.Err() != nil {
			return err
		}
	}
}

// sqliteConstraint reports whether err is SQLite's SQLITE_CONSTRAINT, by the
// text SQLite gives each constraint's failure ("UNIQUE constraint failed:
// …", "CHECK constraint failed: …", or the result code's own "constraint
// failed"), which SQLite drivers pass on. For SQLITE_BUSY, see
// sqlstore.Busy.
func sqliteConstraint(err error) bool {
	return err != nil && strings.Contains(err.Error(), "constraint failed")
}
