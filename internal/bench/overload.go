package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/taskwheel/tasks"
)

// OverloadResult is the outcome of [Overload].
type OverloadResult struct {
	// Completed counts the tasks that started within the run's duration.
	Completed Rate
	// Enqueued counts the tasks stored within it; Refused the calls that
	// returned ErrOverloaded.
	Enqueued, Refused Rate
	// Wait is the time from the call of Enqueue that stored a task to the
	// start of its func, of the tasks that started within the run.
	Wait Latency
}

// Overload measures W4 without the producers' own bound: for d, Producers
// goroutines enqueue no-op tasks one per call as fast as they can, on an
// engine with Config.MaxWaiting = maxWaiting (0, none), and the engine's
// Workers run them. A producer refused with ErrOverloaded waits
// overloadPause and tries again. Without a bound the backlog, and the wait,
// grow for as long as the run lasts; with one, they stay bounded.
func Overload(ctx context.Context, store tasks.Store, d time.Duration, maxWaiting int) (_ OverloadResult, err error) {
	w := newWaitLog()
	eng, err := newEngine(store, tasks.Config{MaxWaiting: maxWaiting}, noopEvent, w.run)
	if err != nil {
		return OverloadResult{}, err
	}
	if err := eng.Start(ctx); err != nil {
		return OverloadResult{}, err
	}
	defer func() { err = errors.Join(err, stopAll(ctx, eng)) }()

	var stop atomic.Bool
	var enqueued, refused atomic.Int64
	produced := make(chan error, 1)
	start := time.Now()
	go func() { // joined below, in every case
		produced <- parallel(ctx, Producers, func(ctx context.Context) error {
			for !stop.Load() {
				_, err := eng.Enqueue(ctx, tasks.NewTask{AppID: appID, EventType: noopEvent, Data: w.data()})
				switch {
				case errors.Is(err, tasks.ErrOverloaded):
					refused.Add(1)
					time.Sleep(overloadPause)
				case err != nil:
					return err
				default:
					enqueued.Add(1)
				}
			}
			return nil
		})
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case err := <-produced: // an error, or ctx ended
		stop.Store(true)
		return OverloadResult{}, fmt.Errorf("enqueue: %w", err)
	}
	ws := w.end()
	elapsed := time.Since(start)
	stop.Store(true)
	r := OverloadResult{
		Completed: Rate{N: len(ws), Elapsed: elapsed},
		Enqueued:  Rate{N: int(enqueued.Load()), Elapsed: elapsed},
		Refused:   Rate{N: int(refused.Load()), Elapsed: elapsed},
		Wait:      latency(ws),
	}
	if err := <-produced; err != nil {
		return r, fmt.Errorf("enqueue: %w", err)
	}
	return r, w.err()
}

// overloadPause is how long a producer of [Overload] waits after
// ErrOverloaded, as a caller honouring Retry-After would, though shorter.
const overloadPause = time.Millisecond
