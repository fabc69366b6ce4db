package tasks

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/taskwheel/tasks/internal/testdb"
)

// The paths of claims under limits on SQL stores (issue 16), which the
// store keeps in two flags: limited (the last claim found limits: Claim
// goes to claimFlow at once, without the claim without limits and the
// check for limits, which claim nothing under a limit) and flowSlow (the
// last claimFlow was held back: it skips the fast claim, claimFlowFast). A
// limit that holds nothing back must leave claims on the fast claim, and
// one that held back once must not keep them off it after it stops holding
// back. (The claims' results are tested on every store by tasktest and
// flow_*_test.go; here, which way they go.)
func TestSQLStore_FlowClaimPaths(t *testing.T) {
	t.Parallel()
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		db := testdb.Postgres(t)
		testFlowClaimPaths(t, db, migrated(t, db, Postgres))
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		db, s := openSQLite(t)
		testFlowClaimPaths(t, db, s)
	})
}

func testFlowClaimPaths(t *testing.T, db *sql.DB, s *SQLStore) {
	ctx := t.Context()
	n := 0
	insertKey := func(key string, k int) {
		t.Helper()
		for range k {
			n++
			id := fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
			if _, err := s.Insert(ctx, &Task{ID: id, AppID: "a", EventType: "e", FlowKey: key, MaxAttempts: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	insert := func(k int) { t.Helper(); insertKey("k", k) }
	setLimit := func(c int) {
		t.Helper()
		if _, err := s.SetLimit(ctx, &Limit{AppID: "a", Key: "k", Concurrency: c}); err != nil {
			t.Fatal(err)
		}
	}
	var fc *flowClaim // of the last claim
	claim := func(want int) []*Task {
		t.Helper()
		fc = &flowClaim{}
		ts, err := s.Claim(context.WithValue(ctx, flowClaimKey{}, fc), 10, time.Minute)
		if err != nil || len(ts) != want {
			t.Fatalf("Claim: got %d tasks, error %v; want %d", len(ts), err, want)
		}
		return ts
	}
	finish := func(ts []*Task) {
		t.Helper()
		outs := make([]Outcome, len(ts))
		for i, tk := range ts {
			outs[i] = Outcome{ID: tk.ID, Attempt: tk.Attempts, State: StateCompleted}
		}
		if _, err := s.Finish(ctx, outs); err != nil {
			t.Fatal(err)
		}
	}
	paths := func(when string, limited, slow bool) {
		t.Helper()
		if s.limited.Load() != limited || s.flowSlow.Load() != slow {
			t.Fatalf("%s: got limited %v, flowSlow %v; want %v, %v", when, s.limited.Load(), s.flowSlow.Load(), limited, slow)
		}
	}

	// A limit above what is due: the one statement claims, and the next
	// claim goes to claimFlow at once.
	setLimit(100)
	insert(3)
	finish(claim(3))
	paths("after a claim that no limit held back", true, false)
	if !fc.held || fc.room != 97 {
		// The engine claims none ahead while a key has few free slots.
		t.Errorf("the claim of 3 under a limit of 100 left held %v, room %d; want true, 97", fc.held, fc.room)
	}

	// The limit holds two of three back: claimFlow parks them, and the
	// claims after it skip the one statement.
	setLimit(1)
	insert(3)
	held := claim(1)
	paths("after a claim that the limit held back", true, true)

	// Raised, the limit holds nothing back any more: the waiting tasks
	// start, and once the key's limit says that none waits, the claims
	// take the one statement again.
	finish(held)
	setLimit(100)
	finish(claim(2))
	claim(0) // finds the limit with nothing waiting
	paths("after the limit stopped holding back", true, false)
	insert(3)
	finish(claim(3))
	paths("after a claim that no limit held back", true, false)

	// Without limits, claims leave claimFlow.
	if err := s.DeleteLimit(ctx, "a", "k"); err != nil {
		t.Fatal(err)
	}
	claim(0)
	paths("after the last limit was deleted", false, false)

	// Tasks that wait for a key with no capacity (a rate of one an hour,
	// its token taken) turn no claim of other keys' tasks away from the
	// one statement, which does not lock their key's limit: such a claim
	// does not wait for another transaction that holds it.
	if _, err := s.SetLimit(ctx, &Limit{AppID: "a", Key: "slow", Rate: 1.0 / 3600, Burst: 1}); err != nil {
		t.Fatal(err)
	}
	insertKey("slow", 3)
	finish(claim(1)) // and parks two
	paths("after a claim that parked tasks", true, true)
	claim(0)
	paths("after a claim that met only waiting tasks without capacity", true, false)
	insert(3)
	if s.dialect == SQLite {
		// One writer: nothing else can hold the limit.
		claim(3)
		paths("after a claim of other keys' tasks", true, false)
		return
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT 1 FROM taskwheel_limits WHERE flow_key = 'slow' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if ts, err := s.Claim(cctx, 10, time.Minute); err != nil || len(ts) != 3 {
		t.Fatalf("Claim while the waiting key's limit is locked: got %d tasks, error %v; want 3", len(ts), err)
	}
	paths("after a claim of other keys' tasks", true, false)
}

// TestSQLStore_FlowClaimPathsAfterLastLimitWithTasksDue: the last limit
// deleted while tasks are due, claims leave claimFlow at once, as they do
// when none is due (TestSQLStore_FlowClaimPaths). The one statement of
// claimFlowFast claimed the due tasks, finding no limit to check, and left
// the store on claimFlow (limited) for as long as each claim found a task:
// a store that once had a limit kept paying for it while it drained.
func TestSQLStore_FlowClaimPathsAfterLastLimitWithTasksDue(t *testing.T) {
	t.Parallel()
	s := migrated(t, testdb.Postgres(t), Postgres)
	ctx := t.Context()
	for i := range 6 {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1)
		if _, err := s.Insert(ctx, &Task{ID: id, AppID: "a", EventType: "e", FlowKey: "k", MaxAttempts: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetLimit(ctx, &Limit{AppID: "a", Key: "k", Concurrency: 100}); err != nil {
		t.Fatal(err)
	}
	if ts, err := s.Claim(ctx, 2, time.Minute); err != nil || len(ts) != 2 {
		t.Fatalf("Claim under a limit: got %d tasks, error %v; want 2", len(ts), err)
	}
	if !s.limited.Load() {
		t.Fatal("after a claim under a limit: limited is false, want true")
	}
	if err := s.DeleteLimit(ctx, "a", "k"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if ts, err := s.Claim(ctx, 2, time.Minute); err != nil || len(ts) != 2 {
			t.Fatalf("Claim without limits: got %d tasks, error %v; want 2", len(ts), err)
		}
		if s.limited.Load() {
			t.Fatal("after a claim with no limit left: limited is true, want false")
		}
	}
}

// On PostgreSQL, claimFlow reads the due tasks through taskwheel_due
// (migration 0026), in due order, on a table that was never analyzed, with
// a generic plan or a custom one. Its own reads, planned from the table's
// size alone, read every due task with a bitmap scan and sorted them:
// 75 ms a claim among 47,000 due tasks, and a concurrency limit that bound
// now and then (on tasks whose outcomes were not stored yet) cost a drain
// 40% of its speed (tasksbench W11 overhead).
func TestSQLStore_FlowClaimPlans(t *testing.T) {
	t.Parallel()
	s := fairStores["Postgres"](t)
	insertAt(t, s, "app_1", 20_000, nil)
	for _, c := range []struct{ name, query string }{
		{"due", flowDuePostgres},
		{"due and limits", flowDueLockPostgres},
	} {
		for _, generic := range []bool{false, true} {
			plan := reviewPlan(t, s, c.query, generic, "100")
			if !strings.Contains(plan, "Function Scan on taskwheel_due") || strings.Contains(plan, "on taskwheel_tasks") {
				t.Errorf("%s, generic %v: want the tasks read by taskwheel_due alone; plan:\n%s", c.name, generic, plan)
			}
		}
	}
}
