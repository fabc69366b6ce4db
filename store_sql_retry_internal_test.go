package tasks

import (
	"context"
	"errors"
	"testing"
)

// stateErr is an error with an SQLSTATE, as pgx's *pgconn.PgError.
type stateErr string

func (e stateErr) Error() string    { return "sqlstate " + string(e) }
func (e stateErr) SQLState() string { return string(e) }

// TestRetryDeadlock: a transaction that PostgreSQL ended to break a
// deadlock runs again, up to maxDeadlockTries in all; any other outcome,
// or an ended context, returns at once.
func TestRetryDeadlock(t *testing.T) {
	deadlock := stateErr("40P01")
	other := stateErr("23505")
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name     string
		ctx      context.Context
		results  []error // op's results, one per run; the last repeats
		wantRuns int
		wantErr  error
	}{
		{"success", context.Background(), []error{nil}, 1, nil},
		{"other error", context.Background(), []error{other}, 1, other},
		{"deadlock, then success", context.Background(), []error{deadlock, nil}, 2, nil},
		{"deadlock, wrapped, then success", context.Background(), []error{errors.Join(errors.New("claim"), deadlock), nil}, 2, nil},
		{"deadlocks", context.Background(), []error{deadlock}, maxDeadlockTries, deadlock},
		{"deadlock, context ended", ended, []error{deadlock}, 1, deadlock},
	} {
		t.Run(tt.name, func(t *testing.T) {
			runs := 0
			err := retryDeadlock(tt.ctx, func() error {
				r := tt.results[min(runs, len(tt.results)-1)]
				runs++
				return r
			})
			if runs != tt.wantRuns || !errors.Is(err, tt.wantErr) {
				t.Errorf("got %d runs, error %v; want %d, %v", runs, err, tt.wantRuns, tt.wantErr)
			}
		})
	}
}
