package tasks_test

import (
	"database/sql"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// slotRowsOf lists the rows of taskwheel_endpoint_slots as
// "endpoint/task/attempt", in order.
func slotRowsOf(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT endpoint_id, task_id, attempt FROM taskwheel_endpoint_slots`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var (
			ep, task string
			attempt  int
		)
		if err := rows.Scan(&ep, &task, &attempt); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s/%s/%d", ep, task, attempt))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	return got
}

// TestSQLStore_EndpointSlotsGoWithTheirAttempts: the rows of endpoints'
// slots and queue marks that no attempt holds any more go at the next
// rescue, whatever the traffic of their endpoints: the slot of an attempt
// that ended without its release, the slot of a rescued attempt, and the
// mark of a queued task that was deleted; the slot of a running attempt
// and the mark of a task that waits for its turn stay.
func TestSQLStore_EndpointSlotsGoWithTheirAttempts(t *testing.T) {
	eachSQLStore(t, func(t *testing.T, s *tasks.SQLStore) {
		db := s.DB()
		ctx := t.Context()
		slots, err := s.InsertEndpoint(ctx, &tasks.Endpoint{ID: "slots", AppID: "a", URL: "http://127.0.0.1:1/", Status: tasks.EndpointActive, MaxInFlight: 5})
		if err != nil {
			t.Fatal(err)
		}
		rate, err := s.InsertEndpoint(ctx, &tasks.Endpoint{ID: "rate", AppID: "a", URL: "http://127.0.0.1:1/", Status: tasks.EndpointActive, RateLimit: 0.001})
		if err != nil {
			t.Fatal(err)
		}
		// rescued: its process died while delivering.
		if _, err := s.Insert(ctx, &tasks.Task{ID: "rescued", AppID: "a", EventType: "x", Data: []byte(`null`), MaxAttempts: 3}); err != nil {
			t.Fatal(err)
		}
		dead, err := s.Claim(ctx, 1, 50*time.Millisecond)
		if err != nil || len(dead) != 1 {
			t.Fatalf("Claim: got %v, %v", dead, err)
		}
		claimed := claimN(t, s, 5) // task-0000 ended, 0001 runs, 0002 takes the token, 0003 waits, 0004 is deleted
		lease := func(tk *tasks.Task) tasks.Lease { return tasks.Lease{ID: tk.ID, Attempt: tk.Attempts} }
		for _, tk := range []*tasks.Task{dead[0], claimed[0], claimed[1]} {
			if ok, _, _, err := s.TakeEndpointCapacity(ctx, slots.ID, lease(tk), 0, ""); !ok || err != nil {
				t.Fatalf("take a slot for %s: got %v, %v", tk.ID, ok, err)
			}
		}
		if ok, _, _, err := s.TakeEndpointCapacity(ctx, rate.ID, lease(claimed[2]), 0, ""); !ok || err != nil {
			t.Fatalf("take the token: got %v, %v", ok, err)
		}
		var outs []tasks.Outcome
		for _, tk := range claimed[3:] {
			if ok, wait, _, err := s.TakeEndpointCapacity(ctx, rate.ID, lease(tk), 0, ""); ok || wait <= 0 || err != nil {
				t.Fatalf("take for %s: got %v, %v, %v; want a wait for a token", tk.ID, ok, wait, err)
			}
			outs = append(outs, tasks.Outcome{ID: tk.ID, Attempt: tk.Attempts, State: tasks.StateRetrying, Delay: time.Hour, WaitReason: "rate_limit"})
		}
		outs = append(outs, tasks.Outcome{ID: claimed[0].ID, Attempt: claimed[0].Attempts, State: tasks.StateCompleted})
		if applied, err := s.Finish(ctx, outs); err != nil || slices.Contains(applied, false) {
			t.Fatalf("Finish: got %v, %v", applied, err)
		}
		if _, err := s.Delete(ctx, claimed[4].ID); err != nil {
			t.Fatal(err)
		}
		before := slotRowsOf(t, db)
		if len(before) != 5 {
			t.Fatalf("rows before the rescue: got %v, want 5", before)
		}
		for deadline := time.Now().Add(limitWait); ; { // past the dead attempt's lease, on the store's clock
			now, _, err := s.Upcoming(ctx, 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			if now.After(*dead[0].LeaseExpiresAt) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the store's clock did not pass %v", dead[0].LeaseExpiresAt)
			}
			<-time.After(10 * time.Millisecond)
		}
		if n, err := s.Rescue(ctx, 100); err != nil || n != 1 {
			t.Fatalf("Rescue: got %d, %v; want 1", n, err)
		}
		want := []string{"rate/task-0003/-1", "slots/task-0001/1"}
		if got := slotRowsOf(t, db); !slices.Equal(got, want) {
			t.Errorf("rows after the rescue: got %v, want %v (before: %v)", got, want, before)
		}
	})
}
