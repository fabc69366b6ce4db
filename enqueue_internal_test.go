package tasks

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// gateStore is a memory store whose first Insert waits at a gate, so that
// the calls that come meanwhile queue in the group commit, and which
// records the batches that reach InsertMany.
type gateStore struct {
	*memoryStore
	entered, open chan struct{}
	once          sync.Once
	refuse        bool // InsertMany fails with a ValidationError
	panics        bool // InsertMany panics

	mu      sync.Mutex
	batches []int
	inserts int
}

func (s *gateStore) Insert(ctx context.Context, t *Task) (*Task, error) {
	s.once.Do(func() { close(s.entered); <-s.open })
	s.mu.Lock()
	s.inserts++
	s.mu.Unlock()
	return s.memoryStore.Insert(ctx, t)
}

func (s *gateStore) InsertMany(ctx context.Context, ts []*Task) ([]*Task, error) {
	s.mu.Lock()
	s.batches = append(s.batches, len(ts))
	s.mu.Unlock()
	if s.refuse {
		return nil, invalid("id", "refused")
	}
	if s.panics {
		panic("store bug")
	}
	return s.memoryStore.InsertMany(ctx, ts)
}

func TestGroupCommit(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		t.Run(map[bool]string{false: "OneInsertForTheQueue", true: "EachAloneAfterARefusedBatch"}[refuse], func(t *testing.T) {
			s := &gateStore{memoryStore: newMemoryStore(), entered: make(chan struct{}), open: make(chan struct{}), refuse: refuse}
			g := &groupCommit{store: s}
			newTask := func() *Task {
				return &Task{ID: uuid.NewString(), AppID: "a", EventType: "x", Data: []byte("null"), MaxAttempts: 1}
			}
			ctx := context.Background()
			const n = 10
			var wg sync.WaitGroup
			errs := make([]error, n+1)
			wg.Go(func() { _, errs[n] = g.insert(ctx, newTask()) })
			<-s.entered // the first insert is under way: the others queue
			for i := range n {
				wg.Go(func() { _, errs[i] = g.insert(ctx, newTask()) })
			}
			queued := func() int {
				g.mu.Lock()
				defer g.mu.Unlock()
				return len(g.queue)
			}
			for deadline := time.Now().Add(10 * time.Second); queued() < n; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d calls queued, want %d", queued(), n)
				}
			}
			// A caller that gives up while queued leaves the queue, and
			// its task is not stored.
			cctx, cancel := context.WithCancel(ctx)
			gone := newTask()
			done := make(chan error)
			go func() { _, err := g.insert(cctx, gone); done <- err }()
			for queued() < n+1 {
				time.Sleep(time.Millisecond)
			}
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("insert with its ctx canceled while queued: got %v, want %v", err, context.Canceled)
			}
			close(s.open)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("insert %d: %v", i, err)
				}
			}
			if _, err := s.Get(ctx, gone.ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get of the task whose caller gave up: got %v, want ErrNotFound", err)
			}
			wantInserts := 1
			if refuse {
				wantInserts += n
			}
			if len(s.batches) != 1 || s.batches[0] != n || s.inserts != wantInserts {
				t.Errorf("got batches %v and %d single inserts, want one batch of %d and %d", s.batches, s.inserts, n, wantInserts)
			}
			if g.busy || len(g.queue) != 0 {
				t.Errorf("after the calls: busy %v, queue %d; want idle and empty", g.busy, len(g.queue))
			}
		})
	}
}

// TestGroupCommit_StorePanics checks that a store's panic in a group commit
// goes up the leading caller's Enqueue, gives the other callers of the
// batch an error, and leaves the group commit working.
func TestGroupCommit_StorePanics(t *testing.T) {
	s := &gateStore{memoryStore: newMemoryStore(), entered: make(chan struct{}), open: make(chan struct{}), panics: true}
	g := &groupCommit{store: s}
	newTask := func() *Task {
		return &Task{ID: uuid.NewString(), AppID: "a", EventType: "x", Data: []byte("null"), MaxAttempts: 1}
	}
	ctx := context.Background()
	const n = 3
	var wg sync.WaitGroup
	wg.Go(func() { g.insert(ctx, newTask()) })
	<-s.entered
	errs := make([]error, n)
	panicked := make([]bool, n)
	for i := range n {
		wg.Go(func() {
			defer func() { panicked[i] = recover() != nil }()
			_, errs[i] = g.insert(ctx, newTask())
		})
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		g.mu.Lock()
		q := len(g.queue)
		g.mu.Unlock()
		if q == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", q, n)
		}
	}
	close(s.open)
	wg.Wait()
	leaders, failed := 0, 0
	for i := range n {
		switch {
		case panicked[i]:
			leaders++
		case errors.Is(errs[i], errStorePanicked):
			failed++
		}
	}
	if leaders != 1 || failed != n-1 {
		t.Errorf("got %d panics and %d errors, want 1 and %d", leaders, failed, n-1)
	}
	if _, err := g.insert(ctx, newTask()); err != nil {
		t.Errorf("insert after the panic: %v", err)
	}
}
