// Package sqlstore holds what package tasks's SQLStore shares with the
// driver packages, sqlite and postgres, beyond its exported API: the root
// stays small, and imports no driver.
package sqlstore

import (
	"context"
	"database/sql"
	"io/fs"
	"strings"
	"time"
)

// SetReadDB makes store, a *tasks.SQLStore of the SQLite dialect, run its
// reads on read, a pool of read-only connections to its database, instead of
// the pool it writes through; call it before using the store. Package tasks
// sets SetReadDB as it initializes: this package cannot name tasks's types,
// as tasks imports it.
var SetReadDB func(store any, read *sql.DB)

// DeferWakeups makes store, a *tasks.SQLStore, send the wake-ups of its
// InsertMany to other engines itself, after the commit and coalesced,
// instead of leaving them to the trigger inside the inserting transaction
// (PostgreSQL; on SQLite it does nothing). It returns the function that
// makes it stop and waits for the wake-ups pending: call it when closing
// the store. Package tasks sets it as it initializes, as it does SetReadDB.
var DeferWakeups func(store any) (stop func())

// PlanEachCall makes store, a *tasks.SQLStore of the PostgreSQL dialect,
// pass option before the arguments of each of its statements that find
// rows by arrays: package postgres passes pgx.QueryExecModeDescribeExec,
// with which PostgreSQL plans such a statement for its arguments every time
// instead of caching a generic plan (see SQLStore.planned in package
// tasks). Call it before using the store. Package tasks sets it as it
// initializes, as it does SetReadDB.
var PlanEachCall func(store any, option any)

// Migrations returns the migrations of the dialect "sqlite" or "postgres"
// in goose's format, for packages sqlite and postgres to export. Package
// tasks sets it as it initializes, as it does SetReadDB.
var Migrations func(dialect string) fs.FS

// DefaultBusyTimeout is how long package tasks retries SQLite's busy
// errors when it migrates (see RetryBusy): package sqlite's default busy
// timeout.
const DefaultBusyTimeout = 10 * time.Second

// Busy reports whether err is SQLite's SQLITE_BUSY, by the text SQLite gives
// that result code, "database is locked", which SQLite drivers pass on
// (mattn/go-sqlite3 as it is; others with the code appended). Matching the
// text keeps package tasks free of any driver's error type.
func Busy(err error) bool {
	return err != nil && strings.Contains(err.Error(), "database is locked")
}

// RetryBusy calls f until it returns anything but SQLite's SQLITE_BUSY (see
// Busy), ctx ends or timeout passes.
//
// It is for the few statements that SQLite fails at once instead of waiting
// in its busy handler: those that read the database and then need to write
// it, where two connections doing so at once would each wait for the other
// to stop reading, so SQLite fails one. Switching a new database to WAL
// mode is one (it reads the file header, then rewrites it): two processes
// opening a new file at once both do it. Retrying from the start, without
// the read, then succeeds.
func RetryBusy(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := f()
		if !Busy(err) || time.Now().After(deadline) {
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
