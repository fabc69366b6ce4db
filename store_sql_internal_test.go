package tasks

import (
	"testing"
	"time"
)

// F12: the SQLite store's clock is its now func, not the caller's; due
// times and leases follow it when it is skewed from the process's clock.
func TestSQLiteStore_ClockSkew(t *testing.T) {
	t.Parallel()
	_, s := openSQLite(t)
	ctx := t.Context()
	real := time.Now().UTC().Truncate(time.Microsecond)
	skew := 0 * time.Hour
	s.now = func() time.Time { return real.Add(skew) }

	at := real.Add(time.Hour)
	tk, err := s.Insert(ctx, &Task{ID: "t1", AppID: "a", EventType: "e", MaxAttempts: 1, ScheduledRunTime: &at})
	if err != nil {
		t.Fatal(err)
	}
	if !tk.CreatedAt.Equal(real) || !tk.NextAttemptAt.Equal(at) {
		t.Fatalf("Insert: got CreatedAt %v, NextAttemptAt %v; want %v, %v", tk.CreatedAt, tk.NextAttemptAt, real, at)
	}
	claim := func(want int) []*Task {
		t.Helper()
		got, err := s.Claim(ctx, 10, time.Hour)
		if err != nil || len(got) != want {
			t.Fatalf("Claim with the store's clock at %v: got %d tasks, error %v; want %d", s.now(), len(got), err, want)
		}
		return got
	}
	rescue := func(want int) {
		t.Helper()
		if n, err := s.Rescue(ctx, 10); n != want || err != nil {
			t.Fatalf("Rescue with the store's clock at %v: got %d, %v; want %d, nil", s.now(), n, err, want)
		}
	}

	// The store's clock is behind: the task is not due, though the process's
	// clock is past its run time.
	skew = -2 * time.Hour
	real = real.Add(2 * time.Hour)
	claim(0)
	if now, due, _ := s.Upcoming(ctx, 30*time.Minute, 10); !now.Equal(real.Add(skew)) || len(due) != 0 {
		t.Fatalf("Upcoming(30m): got now %v, %d due; want %v, none", now, len(due), real.Add(skew))
	}
	if _, due, _ := s.Upcoming(ctx, 90*time.Minute, 10); len(due) != 1 {
		t.Fatalf("Upcoming(90m): got %d due, want 1", len(due))
	}

	// The store's clock reaches the run time: the task is due, and its lease
	// runs for an hour of the store's clock.
	skew = -time.Hour
	got := claim(1)[0]
	if want := real.Add(skew + time.Hour); !got.LeaseExpiresAt.Equal(want) {
		t.Fatalf("Claim: got LeaseExpiresAt %v, want %v", got.LeaseExpiresAt, want)
	}
	skew = -time.Minute // the process's clock is past the lease; the store's is not
	rescue(0)
	skew = 0
	rescue(1)
	if got, _ := s.Get(ctx, "t1"); got.State != StateFailed || got.LastError != errLeaseExpired || !got.CompletedAt.Equal(real) {
		t.Fatalf("after Rescue: got %s, %q, CompletedAt %v; want failed, %q, %v", got.State, got.LastError, got.CompletedAt, errLeaseExpired, real)
	}
	if as, err := s.Attempts(ctx, "t1"); err != nil || len(as) != 1 || !as[0].StartedAt.Equal(real) {
		t.Fatalf("Attempts after Rescue: got %+v, %v; want one started at the store's clock %v", as, err, real)
	}

	// Endpoints are stamped with the store's clock too.
	skew = 3 * time.Hour
	ep, err := s.InsertEndpoint(ctx, &Endpoint{ID: "e1", AppID: "a", URL: "https://example.com/", EnabledEvents: []string{AllEvents}, Status: EndpointActive, Secret: "whsec_x"})
	if err != nil || !ep.CreatedAt.Equal(real.Add(skew)) {
		t.Fatalf("InsertEndpoint: got %+v, %v; want CreatedAt %v", ep, err, real.Add(skew))
	}
	skew = 4 * time.Hour
	if ep, err = s.UpdateEndpoint(ctx, ep); err != nil || !ep.UpdatedAt.Equal(real.Add(skew)) || !ep.CreatedAt.Equal(real.Add(3*time.Hour)) {
		t.Fatalf("UpdateEndpoint: got %+v, %v; want UpdatedAt %v", ep, err, real.Add(skew))
	}
}
