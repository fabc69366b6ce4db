// Package testhook holds what package tasktest reaches of package tasks
// beyond its exported API: running an engine's tasks synchronously, and
// reading tasks through a caller's transaction. Package tasks sets each
// hook as it initializes (this package cannot name its types, as tasks
// imports it); tasktest gives them typed, documented signatures.
package testhook

import (
	"context"
	"database/sql"
	"time"
)

var (
	// Registered reports whether engine, a *tasks.Engine, has a func for
	// eventType.
	Registered func(engine any, eventType string) bool

	// RunFunc runs the func that engine, a *tasks.Engine, registered for
	// the event type of task, a *tasks.Task, on task, in the calling
	// goroutine, as the engine runs an attempt: under the task's timeout,
	// a panic becoming an error with its stack. It changes no store.
	RunFunc func(ctx context.Context, engine any, task any) error

	// RunDue runs the tasks of engine's store due at asOf, and the
	// retries that become due by then, in the calling goroutine, as its
	// workers would, and returns them, a []*tasks.Task, as they ended.
	RunDue func(ctx context.Context, engine any, asOf time.Time) (any, error)

	// ListTx returns, as a []*tasks.Task, the newest tasks (up to limit)
	// of store, a *tasks.SQLStore or a store embedding one, that tx, a
	// transaction on its database, sees, of the app appID and the event
	// type eventType ("" for any).
	ListTx func(ctx context.Context, store any, tx *sql.Tx, appID, eventType string, limit int) (any, error)
)
