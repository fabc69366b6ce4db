package tasks

import (
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskwheel/tasks/internal/testdb"
)

// TestSQLStore_ForgottenClaimIsFenced: PostgreSQL's claims commit without
// waiting for the disk, so a crash of the server can forget a claim whose
// task already runs; the task is then claimed again at the same attempt
// number. The test forgets a claim by putting its row back as it was, and
// claims the task again: every write of the forgotten claim's attempt is
// refused (its lease is revoked, its outcomes do not apply, it takes no
// endpoint slot), and the second claim's apply.
func TestSQLStore_ForgottenClaimIsFenced(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(t *testing.T) (*sql.DB, Dialect){
		"sqlite": func(t *testing.T) (*sql.DB, Dialect) {
			db, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "tasks.db")+"?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate")
			if err != nil {
				t.Fatal(err)
			}
			db.SetMaxOpenConns(1)
			t.Cleanup(func() { db.Close() })
			return db, SQLite
		},
		"postgres": func(t *testing.T) (*sql.DB, Dialect) { return testdb.Postgres(t), Postgres },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			db, dialect := open(t)
			s, err := NewSQLStore(db, dialect)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			// Three tasks: two end with an outcome, one with a waiting outcome.
			var ids []string
			for range 3 {
				ids = append(ids, uuid.Must(uuid.NewV7()).String())
				if _, err := s.Insert(ctx, &Task{ID: ids[len(ids)-1], AppID: "a", EventType: "e", MaxAttempts: 3}); err != nil {
					t.Fatal(err)
				}
			}
			claim := func() map[string]*Task {
				t.Helper()
				ts, err := s.Claim(ctx, 3, time.Minute)
				if err != nil || len(ts) != 3 {
					t.Fatalf("Claim: got %d tasks, %v; want 3", len(ts), err)
				}
				byID := make(map[string]*Task)
				for _, tk := range ts {
					if tk.Attempts != 1 || tk.claim == 0 {
						t.Fatalf("Claim: task %s at attempt %d, token %d; want attempt 1, a token", tk.ID, tk.Attempts, tk.claim)
					}
					byID[tk.ID] = tk
				}
				return byID
			}
			first := claim()
			forget := s.db.Rebind(`UPDATE taskwheel_tasks SET state = 'scheduled', attempts = 0,
				lease_expires_at = NULL, claim_token = NULL WHERE id IN (?, ?, ?)`)
			if _, err := db.ExecContext(ctx, forget, ids[0], ids[1], ids[2]); err != nil {
				t.Fatal(err)
			}
			second := claim()
			var stale, fresh []Lease
			for _, id := range ids {
				stale, fresh = append(stale, first[id].lease()), append(fresh, second[id].lease())
			}
			if stale[0] == fresh[0] || stale[1] == fresh[1] || stale[2] == fresh[2] {
				t.Fatalf("two claims of one attempt: got leases %+v and %+v, want different tokens", stale, fresh)
			}

			revoked, err := s.Extend(ctx, stale, time.Minute)
			if slices.Sort(revoked); err != nil || !slices.Equal(revoked, slices.Sorted(slices.Values(ids))) {
				t.Errorf("Extend of the forgotten claim's leases: got revoked %q, %v; want all", revoked, err)
			}
			if revoked, err := s.Extend(ctx, fresh, time.Minute); err != nil || len(revoked) != 0 {
				t.Errorf("Extend of the second claim's leases: got revoked %q, %v; want none", revoked, err)
			}
			if _, _, _, err := s.TakeEndpointCapacity(ctx, "ep", stale[0], 0, ""); !errors.Is(err, ErrInvalidState) {
				t.Errorf("TakeEndpointCapacity for the forgotten claim: got %v, want ErrInvalidState", err)
			}
			if ok, _, _, err := s.TakeEndpointCapacity(ctx, "ep", fresh[0], 0, ""); !ok || err != nil {
				t.Errorf("TakeEndpointCapacity for the second claim: got %v, %v; want true, nil", ok, err)
			}

			completed := func(l Lease) Outcome {
				return Outcome{ID: l.ID, Attempt: l.Attempt, claim: l.claim, State: StateCompleted,
					Attempts: []Attempt{{Number: 1, StartedAt: time.Now()}}}
			}
			waits := func(l Lease) Outcome {
				return Outcome{ID: l.ID, Attempt: l.Attempt, claim: l.claim, State: StateRetrying,
					WaitReason: "waits", Delay: time.Hour}
			}
			// Both claims' outcomes in one call, as an engine that ran both
			// would send them: for the first two tasks the stale ones first,
			// for the third the stale one last.
			applied, err := s.Finish(ctx, []Outcome{
				completed(stale[0]), waits(stale[1]), completed(fresh[0]), waits(fresh[1]),
				completed(fresh[2]), completed(stale[2]),
			})
			if want := []bool{false, false, true, true, true, false}; err != nil || !slices.Equal(applied, want) {
				t.Fatalf("Finish of the forgotten and the second claims' outcomes: got %v, %v; want %v", applied, err, want)
			}
			done, err := s.Get(ctx, ids[0])
			if err != nil {
				t.Fatal(err)
			}
			waiting, err := s.Get(ctx, ids[1])
			if err != nil {
				t.Fatal(err)
			}
			if done.State != StateCompleted || done.claim != 0 || waiting.State != StateScheduled || waiting.Attempts != 0 {
				t.Errorf("after the outcomes: got %s (token %d) and %s at attempt %d; want completed (no token) and scheduled at 0",
					done.State, done.claim, waiting.State, waiting.Attempts)
			}
			if as, err := s.Attempts(ctx, ids[0]); err != nil || len(as) != 1 {
				t.Errorf("attempts of the completed task: got %d, %v; want the second claim's one", len(as), err)
			}
		})
	}
}
