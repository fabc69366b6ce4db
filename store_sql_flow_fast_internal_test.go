package tasks

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/taskwheel/tasks/internal/testdb"
)

// The fast claim under limits (claimFlowFast) on both SQL
// dialects: what it claims and what it must leave to claimFlow, called
// directly so that the test knows which path decided, and through Claim by
// two stores on one database, as two processes.

// fastStores is two stores on one database, as two processes would have.
type fastStores struct {
	t    *testing.T
	a, b *SQLStore
	n    int // tasks inserted
}

// forSQLDialects runs body on a new database of each SQL dialect.
func forSQLDialects(t *testing.T, body func(t *testing.T, f *fastStores)) {
	t.Helper()
	for _, d := range []Dialect{SQLite, Postgres} {
		name := map[Dialect]string{SQLite: "sqlite", Postgres: "postgres"}[d]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			body(t, openFastStores(t, d))
		})
	}
}

func openFastStores(t *testing.T, d Dialect) *fastStores {
	t.Helper()
	var dbs [2]*sql.DB
	if d == Postgres {
		db := testdb.Postgres(t)
		dbs = [2]*sql.DB{db, db}
	} else {
		path := filepath.Join(t.TempDir(), "tasks.db")
		dbs = [2]*sql.DB{sqliteDBAt(t, path), sqliteDBAt(t, path)}
	}
	f := &fastStores{t: t, a: migrated(t, dbs[0], d), b: migrated(t, dbs[1], d)}
	return f
}

// insert stores n tasks of app and flow key (the event type "e" when key
// is ""), due now, in order, and returns their IDs.
func (f *fastStores) insert(app, key string, n int) []string {
	f.t.Helper()
	var ids []string
	for range n {
		f.n++
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", f.n)
		if _, err := f.a.Insert(f.t.Context(), &Task{ID: id, AppID: app, EventType: "e", FlowKey: key, MaxAttempts: 1}); err != nil {
			f.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func (f *fastStores) setLimit(l Limit) {
	f.t.Helper()
	if err := l.normalize(); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.a.SetLimit(f.t.Context(), &l); err != nil {
		f.t.Fatal(err)
	}
}

// fast runs store s's claimFlowFast of up to limit tasks, and returns the
// IDs it claimed and its flowClaim.
func (f *fastStores) fast(s *SQLStore, limit int) ([]string, *flowClaim) {
	f.t.Helper()
	fc := &flowClaim{}
	rs, err := s.claimFlowFast(context.WithValue(f.t.Context(), flowClaimKey{}, fc), s.db, limit, time.Minute)
	if err != nil {
		f.t.Fatalf("claimFlowFast: %v", err)
	}
	var ids []string
	for _, r := range claimed(rs) {
		ids = append(ids, r.ID)
	}
	return ids, fc
}

// claim runs store s's Claim of up to limit tasks.
func (f *fastStores) claim(s *SQLStore, limit int) ([]string, *flowClaim) {
	f.t.Helper()
	fc := &flowClaim{}
	ts, err := s.Claim(context.WithValue(f.t.Context(), flowClaimKey{}, fc), limit, time.Minute)
	if err != nil {
		f.t.Fatalf("Claim: %v", err)
	}
	var ids []string
	for _, tk := range ts {
		ids = append(ids, tk.ID)
	}
	return ids, fc
}

func (f *fastStores) finish(ids ...string) {
	f.t.Helper()
	outs := make([]Outcome, len(ids))
	for i, id := range ids {
		tk, err := f.a.Get(f.t.Context(), id)
		if err != nil {
			f.t.Fatal(err)
		}
		outs[i] = Outcome{ID: id, Attempt: tk.Attempts, State: StateCompleted}
	}
	if _, err := f.a.Finish(f.t.Context(), outs); err != nil {
		f.t.Fatal(err)
	}
}

// untouched fails unless each task is still scheduled at attempt 0: a
// fast claim that claimed nothing rolled its claim back.
func (f *fastStores) untouched(ids ...string) {
	f.t.Helper()
	for _, id := range ids {
		tk, err := f.a.Get(f.t.Context(), id)
		if err != nil {
			f.t.Fatal(err)
		}
		if tk.State != StateScheduled || tk.Attempts != 0 {
			f.t.Errorf("task %s is %s at attempt %d after a fast claim that claimed nothing; want scheduled at 0", id, tk.State, tk.Attempts)
		}
	}
}

// exec runs query (with ? placeholders) on the database.
func (f *fastStores) exec(query string, args ...any) {
	f.t.Helper()
	if _, err := f.a.db.ExecContext(f.t.Context(), f.a.db.Rebind(query), args...); err != nil {
		f.t.Fatal(err)
	}
}

func wantIDs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: claimed %v, want %v", what, got, want)
	}
}

// TestSQLStore_FlowFastHoldsBack: claimFlowFast claims nothing, and leaves
// the tasks as they were, whenever a limit of a due task's key holds it
// back (paused, a rate, its concurrency reached with the claim, counting
// another store's running tasks), or waiting tasks could start; and claims
// when none does, reporting the fewest free slots it left.
func TestSQLStore_FlowFastHoldsBack(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		limit *Limit // nil: no limit at all
	}{
		{"paused", &Limit{AppID: "a", Key: "k", Paused: true, Concurrency: 100}},
		{"rate", &Limit{AppID: "a", Key: "k", Rate: 100, Burst: 100}},
		{"no limit", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			forSQLDialects(t, func(t *testing.T, f *fastStores) {
				if c.limit != nil {
					f.setLimit(*c.limit)
				}
				ids := f.insert("a", "k", 2)
				got, _ := f.fast(f.a, 10)
				wantIDs(t, c.name, got)
				f.untouched(ids...)
			})
		})
	}
	t.Run("concurrency", func(t *testing.T) {
		t.Parallel()
		forSQLDialects(t, func(t *testing.T, f *fastStores) {
			f.setLimit(Limit{AppID: "a", Key: "k", Concurrency: 5})
			// Another store runs 2 of the key.
			first := f.insert("a", "k", 2)
			got, _ := f.claim(f.b, 2)
			wantIDs(t, "store b's claim", got, first...)
			ids := f.insert("a", "k", 3)
			// 2 running and 3 due: the claim would reach the limit.
			got, _ = f.fast(f.a, 10)
			wantIDs(t, "a claim that reaches the limit", got)
			f.untouched(ids...)
			// 2 of them leave one slot.
			got, fc := f.fast(f.a, 2)
			wantIDs(t, "a claim that leaves a slot", got, ids[:2]...)
			if !fc.held || fc.room != 1 {
				t.Errorf("a claim of 2 with 2 running under a limit of 5 left held %v, room %d; want true, 1", fc.held, fc.room)
			}
			got, _ = f.fast(f.a, 10)
			wantIDs(t, "a claim of the last slot", got)
			f.untouched(ids[2])
		})
	})
	t.Run("lowered", func(t *testing.T) {
		t.Parallel()
		forSQLDialects(t, func(t *testing.T, f *fastStores) {
			f.setLimit(Limit{AppID: "a", Key: "k", Concurrency: 10})
			f.insert("a", "k", 4)
			if got, _ := f.fast(f.b, 10); len(got) != 4 {
				t.Fatalf("claimed %d under a limit of 10, want 4", len(got))
			}
			f.setLimit(Limit{AppID: "a", Key: "k", Concurrency: 2})
			f.insert("a", "k", 1)
			got, _ := f.fast(f.b, 10)
			wantIDs(t, "4 running under a limit lowered to 2", got)
			got, _ = f.claim(f.b, 10)
			wantIDs(t, "Claim with 4 running under a limit lowered to 2", got)
		})
	})
	t.Run("waiting with capacity", func(t *testing.T) {
		t.Parallel()
		forSQLDialects(t, func(t *testing.T, f *fastStores) {
			f.setLimit(Limit{AppID: "a", Key: "k", Concurrency: 1})
			ks := f.insert("a", "k", 3)
			got, _ := f.claim(f.a, 10)
			wantIDs(t, "the first claim", got, ks[0])
			f.finish(ks[0])
			// k has a free slot and two waiting tasks, due before any
			// of j's and the newer ones of k.
			js := f.insert("a", "j", 2)
			newer := f.insert("a", "k", 1)
			got, _ = f.fast(f.b, 10)
			wantIDs(t, "a fast claim while waiting tasks could start", got)
			f.untouched(append(js, newer...)...)
			got, _ = f.claim(f.b, 1)
			wantIDs(t, "a claim of one while waiting tasks could start", got, ks[1])
		})
	})
	t.Run("waiting without capacity", func(t *testing.T) {
		t.Parallel()
		forSQLDialects(t, func(t *testing.T, f *fastStores) {
			f.setLimit(Limit{AppID: "a", Key: "k", Concurrency: 1})
			ks := f.insert("a", "k", 3)
			got, _ := f.claim(f.a, 10)
			wantIDs(t, "the first claim", got, ks[0])
			js := f.insert("a", "j", 2)
			got, fc := f.fast(f.b, 10)
			wantIDs(t, "a fast claim of other keys' tasks", got, js...)
			if fc.held {
				t.Errorf("a claim of a key without a concurrency limit left held, room %d", fc.room)
			}
			// A newer task of k: it waits, behind the others.
			newer := f.insert("a", "k", 1)
			got, _ = f.fast(f.b, 10)
			wantIDs(t, "a fast claim of a task of a key with waiting tasks", got)
			f.untouched(newer...)
		})
	})
	t.Run("waiting for a token", func(t *testing.T) {
		t.Parallel()
		forSQLDialects(t, func(t *testing.T, f *fastStores) {
			// One token an hour: the first task takes it, the second
			// waits.
			f.setLimit(Limit{AppID: "a", Key: "k", Rate: 1.0 / 3600, Burst: 1})
			ks := f.insert("a", "k", 2)
			got, _ := f.claim(f.a, 10)
			wantIDs(t, "the first claim", got, ks[0])
			// Half a token: the waiting task cannot start, other keys'
			// tasks can.
			setTokens := func(ago time.Duration) {
				t.Helper()
				f.exec(`UPDATE taskwheel_limits SET tokens = 0, tokens_at = ? WHERE app_id = 'a' AND flow_key = 'k'`,
					f.a.timeArg(f.a.now().Add(-ago)))
			}
			setTokens(30 * time.Minute)
			js := f.insert("a", "j", 1)
			got, _ = f.fast(f.b, 10)
			wantIDs(t, "half a token", got, js...)
			// A token and a half: the waiting task can start, first.
			setTokens(90 * time.Minute)
			js = f.insert("a", "j", 1)
			got, _ = f.fast(f.b, 10)
			wantIDs(t, "a token and a half", got)
			f.untouched(js...)
			got, _ = f.claim(f.b, 1)
			wantIDs(t, "a claim of one when the waiting task has its token", got, ks[1])
		})
	})
	t.Run("keys as JSON", func(t *testing.T) {
		t.Parallel()
		forSQLDialects(t, func(t *testing.T, f *fastStores) {
			// Keys that JSON escapes: the limit is found all the same.
			for i, key := range []string{`q"uo\te`, "<&>", "line\u2028sep", "é€😀", `["a","k"]`, "k'; --"} {
				app := fmt.Sprintf(`a"%d\`, i)
				f.setLimit(Limit{AppID: app, Key: key, Concurrency: 1})
				ids := f.insert(app, key, 2)
				got, _ := f.claim(f.a, 1)
				wantIDs(t, "the first claim of key "+key, got, ids[0])
				got, _ = f.fast(f.b, 10)
				wantIDs(t, "a fast claim of key "+key+" at its limit", got)
				if got, _ := f.claim(f.b, 10); len(got) != 0 {
					t.Errorf("Claim of key %q at its limit claimed %v", key, got)
				}
			}
		})
	})
	t.Run("event type", func(t *testing.T) {
		t.Parallel()
		forSQLDialects(t, func(t *testing.T, f *fastStores) {
			f.setLimit(Limit{AppID: "a", Key: "e", Concurrency: 1})
			ids := f.insert("a", "", 2)
			got, _ := f.claim(f.a, 1)
			wantIDs(t, "the first claim", got, ids[0])
			got, _ = f.fast(f.b, 10)
			wantIDs(t, "a fast claim of an event type at its limit", got)
			f.untouched(ids[1])
		})
	})
	t.Run("apps", func(t *testing.T) {
		t.Parallel()
		forSQLDialects(t, func(t *testing.T, f *fastStores) {
			// The same key in two apps: a's limit is reached, b's key
			// has none, c's is reached.
			f.setLimit(Limit{AppID: "a", Key: "k", Concurrency: 1})
			f.setLimit(Limit{AppID: "c", Key: "k", Concurrency: 1})
			as := f.insert("a", "k", 2)
			cs := f.insert("c", "k", 2)
			got, _ := f.claim(f.a, 1)
			wantIDs(t, "the first claim", got, as[0])
			got, _ = f.claim(f.a, 1)
			wantIDs(t, "the second claim", got, cs[0])
			got, _ = f.claim(f.a, 10) // parks a's and c's
			wantIDs(t, "the third claim", got)
			bs := f.insert("b", "k", 2)
			got, fc := f.fast(f.b, 10)
			wantIDs(t, "a fast claim of app b's key", got, bs...)
			if fc.held {
				t.Errorf("a claim of a key without a limit left held, room %d", fc.room)
			}
			cs = f.insert("c", "k", 1)
			got, _ = f.fast(f.b, 10)
			wantIDs(t, "a fast claim of app c's key at its limit", got)
			f.untouched(cs...)
		})
	})
	t.Run("room", func(t *testing.T) {
		t.Parallel()
		forSQLDialects(t, func(t *testing.T, f *fastStores) {
			// A limit that limits nothing, and a paused key with nothing
			// due: no room to report.
			f.setLimit(Limit{AppID: "a", Key: "free"})
			f.setLimit(Limit{AppID: "a", Key: "p", Paused: true})
			ids := f.insert("a", "free", 3)
			got, fc := f.fast(f.a, 10)
			wantIDs(t, "a key whose limit limits nothing", got, ids...)
			if fc.held {
				t.Errorf("a claim of a key without a concurrency limit left held, room %d", fc.room)
			}
			// Two keys: the fewest free slots, counting store a's
			// running tasks of the key.
			f.setLimit(Limit{AppID: "a", Key: "k1", Concurrency: 100})
			f.setLimit(Limit{AppID: "a", Key: "k2", Concurrency: 10})
			f.insert("a", "k2", 2)
			if got, _ := f.fast(f.a, 10); len(got) != 2 {
				t.Fatalf("claimed %d, want 2", len(got))
			}
			ids = append(f.insert("a", "k1", 3), f.insert("a", "k2", 3)...)
			got, fc = f.fast(f.b, 10)
			wantIDs(t, "two keys", got, ids...)
			if !fc.held || fc.room != 5 {
				t.Errorf("a claim of 3 of k1 (limit 100) and 3 of k2 (limit 10, 2 running) left held %v, room %d; want true, 5", fc.held, fc.room)
			}
		})
	})
}

// TestSQLStore_FlowFastLimitChangedBetweenClaims: a store whose claims
// take the fast claim (its last claim went there) obeys at once a limit
// that another store paused, lowered or deleted since.
func TestSQLStore_FlowFastLimitChangedBetweenClaims(t *testing.T) {
	t.Parallel()
	onFast := func(t *testing.T, f *fastStores) {
		t.Helper()
		f.setLimit(Limit{AppID: "a", Key: "k", Concurrency: 100})
		f.insert("a", "k", 2)
		if got, _ := f.claim(f.b, 10); len(got) != 2 {
			t.Fatalf("claimed %d, want 2", len(got))
		}
		if !f.b.limited.Load() || f.b.flowSlow.Load() {
			t.Fatalf("store b: limited %v, flowSlow %v; want true, false", f.b.limited.Load(), f.b.flowSlow.Load())
		}
	}
	t.Run("paused", func(t *testing.T) {
		t.Parallel()
		forSQLDialects(t, func(t *testing.T, f *fastStores) {
			onFast(t, f)
			f.setLimit(Limit{AppID: "a", Key: "k", Concurrency: 100, Paused: true})
			ids := f.insert("a", "k", 3)
			got, _ := f.claim(f.b, 10)
			wantIDs(t, "a claim after the key was paused", got)
			f.setLimit(Limit{AppID: "a", Key: "k", Concurrency: 100})
			got, _ = f.claim(f.b, 10)
			wantIDs(t, "a claim after the key was resumed", got, ids...)
		})
	})
	t.Run("lowered", func(t *testing.T) {
		t.Parallel()
		forSQLDialects(t, func(t *testing.T, f *fastStores) {
			onFast(t, f)
			f.setLimit(Limit{AppID: "a", Key: "k", Concurrency: 3})
			ids := f.insert("a", "k", 3)
			got, _ := f.claim(f.b, 10)
			wantIDs(t, "a claim after the limit was lowered to 3 with 2 running", got, ids[0])
		})
	})
	t.Run("deleted", func(t *testing.T) {
		t.Parallel()
		forSQLDialects(t, func(t *testing.T, f *fastStores) {
			onFast(t, f)
			if err := f.a.DeleteLimit(t.Context(), "a", "k"); err != nil {
				t.Fatal(err)
			}
			ids := f.insert("a", "k", 4)
			for i := range 2 {
				got, _ := f.claim(f.b, 2)
				wantIDs(t, "a claim after the last limit was deleted", got, ids[2*i:2*i+2]...)
				if f.b.limited.Load() {
					t.Errorf("after a claim with no limit left: limited is true, want false")
				}
			}
		})
	})
	t.Run("set on another key", func(t *testing.T) {
		t.Parallel()
		forSQLDialects(t, func(t *testing.T, f *fastStores) {
			onFast(t, f)
			f.setLimit(Limit{AppID: "a", Key: "j", Paused: true})
			js := f.insert("a", "j", 2)
			ks := f.insert("a", "k", 2)
			got, _ := f.claim(f.b, 10)
			wantIDs(t, "a claim after another key was paused", got, ks...)
			f.untouched(js...)
		})
	})
}

// TestSQLStore_FlowFastRoomAfterTheLock: on PostgreSQL the fast claim
// counts a key's running tasks after it has locked the key's limit, so
// that it sees those that a claim holding the limit started meanwhile:
// both when it decides whether the limit holds its tasks back, and in the
// room it reports.
func TestSQLStore_FlowFastRoomAfterTheLock(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		concurrency int
		claimed     int // of 3 due
		room        int
	}{
		{10, 3, 3}, // 4 started meanwhile, 3 claimed: 3 left
		{7, 0, 0},  // 4 started meanwhile: 3 more would reach the limit
	} {
		t.Run(fmt.Sprint(c.concurrency), func(t *testing.T) {
			t.Parallel()
			f := openFastStores(t, Postgres)
			ctx := t.Context()
			f.setLimit(Limit{AppID: "a", Key: "k", Concurrency: c.concurrency})
			others := f.insert("a", "k", 4)
			ids := f.insert("a", "k", 3)
			// Another claim: it holds the limit, and starts 4 tasks.
			tx, err := f.a.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			var xid string
			if err := tx.QueryRowContext(ctx, `SELECT (txid_current() % 4294967296)::text`).Scan(&xid); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, `SELECT 1 FROM taskwheel_limits WHERE app_id = 'a' AND flow_key = 'k' FOR UPDATE`); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE taskwheel_tasks SET state = 'running', attempts = 1,
				lease_expires_at = now() + interval '1 hour' WHERE id = ANY($1)`, others); err != nil {
				t.Fatal(err)
			}
			type result struct {
				ids []string
				fc  *flowClaim
				err error
			}
			got := make(chan result, 1)
			go func() {
				fc := &flowClaim{}
				rs, err := f.b.claimFlowFast(context.WithValue(ctx, flowClaimKey{}, fc), f.b.db, 10, time.Minute)
				var ids []string
				for _, r := range claimed(rs) {
					ids = append(ids, r.ID)
				}
				got <- result{ids, fc, err}
			}()
			// The fast claim waits for the limit (for the transaction
			// that holds it).
			for waiting := false; !waiting; {
				if err := f.a.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
					WHERE locktype = 'transactionid' AND transactionid::text = $1 AND NOT granted)`, xid).Scan(&waiting); err != nil {
					t.Fatal(err)
				}
				select {
				case r := <-got:
					t.Fatalf("the fast claim returned %v, %v while another transaction held the limit", r.ids, r.err)
				default:
				}
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			r := <-got
			if r.err != nil {
				t.Fatal(r.err)
			}
			want := ids[:c.claimed]
			if c.claimed == 0 {
				want = nil
			}
			wantIDs(t, "the fast claim after the other", r.ids, want...)
			if c.claimed > 0 && (!r.fc.held || r.fc.room != c.room) {
				t.Errorf("room: held %v, %d; want true, %d", r.fc.held, r.fc.room, c.room)
			}
		})
	}
}
