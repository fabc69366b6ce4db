package tasks

import (
	"fmt"
	"testing"
	"time"
)

// TestMemoryStore_EndpointSlotsGoWithTheirAttempts: as
// TestSQLStore_EndpointSlotsGoWithTheirAttempts, on the memory store: the
// slots and queue marks that no attempt holds any more are forgotten at
// the next rescue.
func TestMemoryStore_EndpointSlotsGoWithTheirAttempts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newMemoryStore()
	clock := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	for _, ep := range []*Endpoint{
		{ID: "slots", AppID: "a", URL: "http://127.0.0.1:1/", Status: EndpointActive, MaxInFlight: 5},
		{ID: "rate", AppID: "a", URL: "http://127.0.0.1:1/", Status: EndpointActive, RateLimit: 0.001},
	} {
		if _, err := s.InsertEndpoint(ctx, ep); err != nil {
			t.Fatal(err)
		}
	}
	claim := func(n int, lease time.Duration) []*Task {
		t.Helper()
		for range n {
			if _, err := s.Insert(ctx, &Task{ID: fmt.Sprintf("task-%d", s.tasks.len()), AppID: "a", EventType: "x", MaxAttempts: 3}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Claim(ctx, n, lease)
		if err != nil || len(got) != n {
			t.Fatalf("Claim: got %d, %v; want %d", len(got), err, n)
		}
		return got
	}
	dead := claim(1, time.Second)[0]
	claimed := claim(5, time.Hour) // ended, runs, takes the token, waits, deleted
	take := func(ep string, tk *Task, want bool) {
		t.Helper()
		if ok, _, _, err := s.TakeEndpointCapacity(ctx, ep, Lease{ID: tk.ID, Attempt: tk.Attempts}, 0, ""); ok != want || err != nil {
			t.Fatalf("take %s for %s: got %v, %v; want %v", ep, tk.ID, ok, err, want)
		}
	}
	for _, tk := range []*Task{dead, claimed[0], claimed[1]} {
		take("slots", tk, true)
	}
	take("rate", claimed[2], true)
	var outs []Outcome
	for _, tk := range claimed[3:] {
		take("rate", tk, false)
		outs = append(outs, Outcome{ID: tk.ID, Attempt: tk.Attempts, State: StateRetrying, Delay: time.Hour, WaitReason: "rate_limit"})
	}
	outs = append(outs, Outcome{ID: claimed[0].ID, Attempt: claimed[0].Attempts, State: StateCompleted})
	if _, err := s.Finish(ctx, outs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, claimed[4].ID); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Minute) // past the dead attempt's lease
	if n, err := s.Rescue(ctx, 100); err != nil || n != 1 {
		t.Fatalf("Rescue: got %d, %v; want 1", n, err)
	}
	slots, reserved := s.epFlow["slots"].slots, s.epFlow["rate"].reserved
	if len(slots) != 1 || !slots[Lease{ID: claimed[1].ID, Attempt: 1}] {
		t.Errorf("slots after the rescue: got %v, want only %s's", slots, claimed[1].ID)
	}
	if len(reserved) != 1 || !reserved[Lease{ID: claimed[3].ID, Attempt: 1}] {
		t.Errorf("queue marks after the rescue: got %v, want only %s's", reserved, claimed[3].ID)
	}
}
