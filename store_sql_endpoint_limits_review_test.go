package tasks_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// slotRows counts the rows of taskwheel_endpoint_slots.
func slotRows(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM taskwheel_endpoint_slots`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSQLStore_EndpointQueueMarksDoNotLeak: a task refused a token of an
// endpoint's rate limit is marked as queued (a row of
// taskwheel_endpoint_slots); if it never comes back (deleted, canceled),
// its mark goes once the queue it was in has drained, and an endpoint's
// rows go with it.
func TestSQLStore_EndpointQueueMarksDoNotLeak(t *testing.T) {
	eachSQLStore(t, func(t *testing.T, s *tasks.SQLStore) {
		db := s.DB()
		ctx := t.Context()
		ep, err := s.InsertEndpoint(ctx, &tasks.Endpoint{ID: "ep_1", AppID: "a", URL: "http://127.0.0.1:1/", Status: tasks.EndpointActive, RateLimit: 5})
		if err != nil {
			t.Fatal(err)
		}
		claimed := claimN(t, s, 3)
		lease := func(i int) tasks.Lease { return tasks.Lease{ID: claimed[i].ID, Attempt: claimed[i].Attempts} }
		if ok, _, _, err := s.TakeEndpointCapacity(ctx, ep.ID, lease(0), 0, ""); !ok || err != nil {
			t.Fatalf("first take: got %v, %v; want the token", ok, err)
		}
		start := time.Now()
		for i := 1; i <= 2; i++ {
			if ok, wait, _, err := s.TakeEndpointCapacity(ctx, ep.ID, lease(i), 0, ""); ok || wait <= 0 || err != nil {
				t.Fatalf("take %d: got %v, %v, %v; want a wait for a token", i, ok, wait, err)
			}
		}
		outs := []tasks.Outcome{
			{ID: claimed[1].ID, Attempt: claimed[1].Attempts, State: tasks.StateRetrying, Delay: time.Hour, WaitReason: "rate_limit"},
			{ID: claimed[2].ID, Attempt: claimed[2].Attempts, State: tasks.StateRetrying, Delay: time.Hour, WaitReason: "rate_limit"},
		}
		if applied, err := s.Finish(ctx, outs); err != nil || len(applied) != 2 || !applied[0] || !applied[1] {
			t.Fatalf("Finish: got %v, %v", applied, err)
		}
		if got := slotRows(t, db); got != 2 {
			t.Fatalf("queue marks: got %d, want 2", got)
		}
		if _, err := s.Delete(ctx, claimed[1].ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Cancel(ctx, claimed[2].ID); err != nil {
			t.Fatal(err)
		}
		// The two marked deliveries were to come back within 3 tokens
		// (0.6 s at 5 a second): the queue drains after that, whatever
		// the clock; this waits on the clock, as the bucket does.
		time.Sleep(time.Until(start.Add(time.Second)))
		more := claimN2(t, s, "later", 1)
		if ok, _, _, err := s.TakeEndpointCapacity(ctx, ep.ID, tasks.Lease{ID: more[0].ID, Attempt: more[0].Attempts}, 0, ""); !ok || err != nil {
			t.Fatalf("take after the queue drained: got %v, %v; want the token", ok, err)
		}
		if got := slotRows(t, db); got != 0 {
			t.Errorf("queue marks after the queue drained: got %d, want 0 (the deleted and canceled tasks' marks leak)", got)
		}
	})
}

// claimN2 inserts n tasks named prefix-i due now and claims them.
func claimN2(t *testing.T, s tasks.Store, prefix string, n int) []*tasks.Task {
	t.Helper()
	for i := range n {
		if _, err := s.Insert(t.Context(), &tasks.Task{ID: prefix + "-" + string(rune('a'+i)), AppID: "a", EventType: "x",
			Data: []byte(`null`), MaxAttempts: 3}); err != nil {
			t.Fatal(err)
		}
	}
	claimed, err := s.Claim(t.Context(), n, time.Hour)
	if err != nil || len(claimed) != n {
		t.Fatalf("Claim: got %d tasks, %v; want %d", len(claimed), err, n)
	}
	return claimed
}
