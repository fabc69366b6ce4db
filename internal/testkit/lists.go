package testkit

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskwheel/tasks"
)

// InsertListed stores, through s.InsertMany, batches of tasks of the apps
// app_1 and app_2 with UUIDv7 IDs, as an engine makes them: each batch's
// tasks share a creation time, so that listings order them by ID too. It
// returns the time before the first insert.
func InsertListed(t *testing.T, s tasks.Store, batches, perApp int) time.Time {
	t.Helper()
	start := time.Now()
	for range batches {
		var ts []*tasks.Task
		for i := range 2 * perApp {
			ts = append(ts, &tasks.Task{
				ID:          uuid.Must(uuid.NewV7()).String(),
				AppID:       fmt.Sprintf("app_%d", 1+i%2),
				EventType:   "test.event",
				Data:        json.RawMessage(`{}`),
				MaxAttempts: 3,
			})
		}
		if _, err := s.InsertMany(t.Context(), ts); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // the next batch is created later
	}
	return start
}

// Listings returns the task IDs of the listings that the list indexes
// serve, each paged through its cursors a few tasks at a time: every
// app's; app_1's and app_2's, of every state and of two; and app_1's
// created from since until now, as a bulk operation reads them.
func Listings(t *testing.T, s tasks.Store, since time.Time) map[string][]string {
	t.Helper()
	ps := map[string]tasks.ListParams{
		"every app's": {},
		"app_1's":     {AppID: "app_1"},
		"app_2's":     {AppID: "app_2"},
		"app_1's scheduled or completed": {AppID: "app_1",
			States: []tasks.State{tasks.StateScheduled, tasks.StateCompleted}},
		"app_1's since": {AppID: "app_1", CreatedSince: since, CreatedBefore: time.Now()},
	}
	got := make(map[string][]string, len(ps))
	for name, p := range ps {
		p.Limit = 7
		for {
			page, next, err := s.List(t.Context(), p)
			if err != nil {
				t.Fatalf("List %s: %v", name, err)
			}
			for _, task := range page {
				got[name] = append(got[name], task.ID)
			}
			if next == "" {
				break
			}
			p.Cursor = next
		}
	}
	return got
}

// SameListings fails the test unless got and want hold the same listings.
func SameListings(t *testing.T, got, want map[string][]string) {
	t.Helper()
	for name, w := range want {
		if len(w) == 0 {
			t.Errorf("listing %s: empty before", name)
		}
		if g := got[name]; !slices.Equal(g, w) {
			t.Errorf("listing %s: got %v, want %v", name, g, w)
		}
	}
}

// NewestFirst inserts a task of each app, as InsertListed does, and fails
// the test unless they are the first two of every app's listing.
func NewestFirst(t *testing.T, s tasks.Store) {
	t.Helper()
	since := InsertListed(t, s, 1, 1)
	fresh, _, err := s.List(t.Context(), tasks.ListParams{CreatedSince: since})
	if err != nil || len(fresh) != 2 {
		t.Fatalf("List of the two tasks just inserted: got %d, %v", len(fresh), err)
	}
	top, _, err := s.List(t.Context(), tasks.ListParams{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range fresh {
		if top[i].ID != fresh[i].ID {
			t.Errorf("every app's listing starts with %s, %s; want the newest, %s, %s",
				top[0].ID, top[1].ID, fresh[0].ID, fresh[1].ID)
			break
		}
	}
}
