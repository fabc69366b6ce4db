package tasks_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// readTogether is a store whose first two reads of an endpoint or periodic
// task each wait for the other, so that two updates through engines on it
// both read the record before either writes it: the interleaving that
// loses an update when writes are not compare and set. Later reads pass.
type readTogether struct {
	tasks.Store
	mu      sync.Mutex
	arrived int
	both    chan struct{}
}

func newReadTogether(s tasks.Store) *readTogether {
	return &readTogether{Store: s, both: make(chan struct{})}
}

func (s *readTogether) await(ctx context.Context) error {
	s.mu.Lock()
	s.arrived++
	switch s.arrived {
	case 2:
		close(s.both)
	case 1:
	default:
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	select {
	case <-s.both:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
		panic("readTogether: the second read never came")
	}
}

func (s *readTogether) GetEndpoint(ctx context.Context, id string) (*tasks.Endpoint, error) {
	ep, err := s.Store.GetEndpoint(ctx, id)
	if err := s.await(ctx); err != nil {
		return nil, err
	}
	return ep, err
}

func (s *readTogether) GetPeriodic(ctx context.Context, id string) (*tasks.PeriodicTask, error) {
	p, err := s.Store.GetPeriodic(ctx, id)
	if err := s.await(ctx); err != nil {
		return nil, err
	}
	return p, err
}

// both runs f(0) and f(1) at once and waits for them.
func both(t *testing.T, f func(i int) error) {
	t.Helper()
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
}

// TestEngine_ConcurrentUpdates checks that two updates of one endpoint or
// periodic task that read it at the same moment both apply: the second
// write finds the record changed, reads it again and applies its change to
// the first one's result.
func TestEngine_ConcurrentUpdates(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		ctx := context.Background()
		t.Run("two secret rotations: both new secrets sign", func(t *testing.T) {
			t.Parallel()
			store := newStore(t)
			ep := createEndpoint(t, newEngine(t, store, nil), tasks.NewEndpoint{URL: "https://example.com/hooks"})
			e := newEngine(t, newReadTogether(store), nil)
			shown := make([]string, 2)
			both(t, func(i int) error {
				got, err := e.RotateEndpointSecret(ctx, ep.ID, time.Hour)
				if err == nil {
					shown[i] = got.Secret
				}
				return err
			})
			got, err := store.GetEndpoint(ctx, ep.ID)
			if err != nil {
				t.Fatal(err)
			}
			stored := []string{got.Secret, got.PreviousSecret}
			slices.Sort(stored)
			slices.Sort(shown)
			if !slices.Equal(stored, shown) {
				t.Errorf("stored secret and previous secret %q, want the two secrets the rotations returned, %q", stored, shown)
			}
		})
		t.Run("two endpoint updates of different fields: both apply", func(t *testing.T) {
			t.Parallel()
			store := newStore(t)
			ep := createEndpoint(t, newEngine(t, store, nil), tasks.NewEndpoint{URL: "https://example.com/hooks"})
			e := newEngine(t, newReadTogether(store), nil)
			url, description := "https://example.com/changed", "changed"
			both(t, func(i int) error {
				u := []tasks.EndpointUpdate{{URL: &url}, {Description: &description}}[i]
				_, err := e.UpdateEndpoint(ctx, ep.ID, u)
				return err
			})
			got, err := store.GetEndpoint(ctx, ep.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.URL != url || got.Description != description {
				t.Errorf("URL %q, Description %q; want both changed: %q, %q", got.URL, got.Description, url, description)
			}
		})
		t.Run("two periodic task updates of different fields: both apply", func(t *testing.T) {
			t.Parallel()
			store := newStore(t)
			p := createPeriodic(t, newEngine(t, store, nil), tasks.NewPeriodic{Spec: "@daily"})
			e := newEngine(t, newReadTogether(store), nil)
			data, missed := json.RawMessage(`{"changed":true}`), tasks.MissedSkip
			both(t, func(i int) error {
				u := []tasks.PeriodicUpdate{{Data: data}, {Missed: &missed}}[i]
				_, err := e.UpdatePeriodic(ctx, p.ID, u)
				return err
			})
			got, err := store.GetPeriodic(ctx, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Data) != string(data) || got.Missed != missed {
				t.Errorf("Data %s, Missed %q; want both changed: %s, %q", got.Data, got.Missed, data, missed)
			}
		})
	})
}
