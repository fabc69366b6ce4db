package tasks_test

import (
	"context"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// noListen shows a store to an engine without its notifications: the
// engine learns of changes made elsewhere only by polling.
type noListen struct{ tasks.Store }

func (noListen) Listen(context.Context, func(), func(tasks.Due)) error {
	return tasks.ErrNotSupported
}

// Tasks waiting for a paused key start at the engine's next poll once the
// key is resumed where the engine does not hear of it (another process, a
// lost notification): the poll's read of upcoming tasks says tasks wait,
// and the engine claims. Nothing else would start them: a waiting task is
// due at no time of its own, and the key's concurrency limit keeps them
// waiting after the resume.
func TestEngine_WaitingTasksStartAtPollWhenResumedElsewhere(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		ctx := t.Context()
		s := newStore(t)
		funcs, _, late := counting()
		e := startEngine(t, noListen{s}, &tasks.Config{Workers: 4, PollInterval: 50 * time.Millisecond}, funcs)
		if _, err := e.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "w", Paused: true, Concurrency: 1}); err != nil {
			t.Fatal(err)
		}
		late.Add(3)
		var ids []string
		for range 3 {
			ids = append(ids, enqueue(t, e, tasks.NewTask{EventType: "late", FlowKey: "w"}).ID)
		}
		for _, id := range ids {
			waitFor(t, 5*time.Second, "task "+id+" waiting", func() bool {
				got, err := e.Get(ctx, id)
				return err == nil && got.WaitReason != ""
			})
		}
		if _, err := s.PauseLimit(ctx, "app_1", "w", false); err != nil {
			t.Fatal(err)
		}
		waitGroup(t, late, 5*time.Second)
	})
}
