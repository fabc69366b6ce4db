package tasks_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/taskwheel/tasks"
)

// Config.MaxWaiting holds under concurrent Enqueue calls: callers that
// overlap at the bound do not all get in, as they would if each looked at
// the count before any of them stored its task.
func TestEngine_MaxWaitingConcurrent(t *testing.T) {
	t.Parallel()
	const bound, callers = 5, 64
	e := newEngine(t, tasks.NewMemoryStore(), &tasks.Config{MaxWaiting: bound})
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			<-start
			_, err := e.Enqueue(context.Background(), tasks.NewTask{AppID: "app_1", EventType: "x"})
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, tasks.ErrOverloaded) {
			t.Fatalf("enqueue: %v", err)
		}
	}
	if n := len(listAll(t, e)); n > bound {
		t.Errorf("stored %d tasks waiting to run, want at most Config.MaxWaiting = %d", n, bound)
	}
}
