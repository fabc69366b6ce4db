package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/client"
)

// flaky answers the first n requests with status and Retry-After
// retryAfter ("" for none), and counts the requests.
func flaky(n int64, status int, retryAfter string, count *atomic.Int64) func(http.Handler) http.Handler {
	return flakyNotify(n, status, retryAfter, count, nil)
}

// flakyNotify is flaky, and sends on answered, if not nil, after each
// failure it answers.
func flakyNotify(n int64, status int, retryAfter string, count *atomic.Int64, answered chan<- struct{}) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if count.Add(1) <= n {
				if answered != nil {
					defer func() { answered <- struct{}{} }()
				}
				if retryAfter != "" {
					w.Header().Set("Retry-After", retryAfter)
				}
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(status)
				w.Write([]byte(`{"type":"about:blank","title":"` + http.StatusText(status) + `","status":503,"detail":"try later","error":"try later"}`))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// lostAnswers serves the first n requests but drops the connection instead
// of answering, as a network failure after the server acted would.
func lostAnswers(n int64, count *atomic.Int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if count.Add(1) <= n {
				next.ServeHTTP(httptest.NewRecorder(), r)
				panic(http.ErrAbortHandler) // closes the connection unanswered
			}
			next.ServeHTTP(w, r)
		})
	}
}

// fast retries at once.
var fast = &client.Config{Key: key, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}

func TestClient_Retries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("reads retry 503 up to MaxRetries", func(t *testing.T) {
		t.Parallel()
		var count atomic.Int64
		s := newServer(t, tasks.NewMemoryStore(), flaky(3, http.StatusServiceUnavailable, "", &count))
		if _, err := s.client(t, fast).Endpoints(ctx, app); err != nil {
			t.Fatalf("after 3 failures and 3 retries: %v", err)
		}
		if n := count.Load(); n != 4 {
			t.Errorf("%d requests, want 4", n)
		}
		count.Store(-1) // 4 failures
		_, err := s.client(t, fast).Endpoints(ctx, app)
		if !errors.Is(err, client.ErrUnavailable) {
			t.Errorf("after 4 failures: %v, want ErrUnavailable", err)
		}
		count.Store(0)
		cfg := *fast
		cfg.MaxRetries = -1
		if _, err := s.client(t, &cfg).Endpoints(ctx, app); !errors.Is(err, client.ErrUnavailable) || count.Load() != 1 {
			t.Errorf("MaxRetries -1: %v after %d requests, want ErrUnavailable after 1", err, count.Load())
		}
	})
	t.Run("Retry-After is honoured", func(t *testing.T) {
		t.Parallel()
		var count atomic.Int64
		s := newServer(t, tasks.NewMemoryStore(), flaky(1, http.StatusTooManyRequests, "1", &count))
		cfg := *fast
		cfg.MaxBackoff = 5 * time.Second
		start := time.Now()
		if _, err := s.client(t, &cfg).Schedules(ctx, app); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited < time.Second {
			t.Errorf("retried after %v, want at least the 1s of Retry-After", waited)
		}
	})
	t.Run("a Retry-After beyond MaxBackoff is returned", func(t *testing.T) {
		t.Parallel()
		var count atomic.Int64
		s := newServer(t, tasks.NewMemoryStore(), flaky(1, http.StatusServiceUnavailable, "60", &count))
		_, err := s.client(t, fast).Schedules(ctx, app)
		var e *client.Error
		if !errors.As(err, &e) || e.RetryAfter != time.Minute || count.Load() != 1 {
			t.Errorf("%v after %d requests, want an *Error with RetryAfter 1m after 1", err, count.Load())
		}
	})
	t.Run("a Retry-After too large for 32 bits is beyond MaxBackoff too", func(t *testing.T) {
		t.Parallel()
		var count atomic.Int64
		s := newServer(t, tasks.NewMemoryStore(), flaky(1, http.StatusServiceUnavailable, "5000000000", &count))
		_, err := s.client(t, fast).Schedules(ctx, app)
		var e *client.Error
		if !errors.As(err, &e) || e.RetryAfter != 5000000000*time.Second || count.Load() != 1 {
			t.Errorf("%v after %d requests, want an *Error with RetryAfter 5000000000s after 1", err, count.Load())
		}
	})
	t.Run("create with an Idempotency-Key retries a lost answer", func(t *testing.T) {
		t.Parallel()
		var count atomic.Int64
		s := newServer(t, tasks.NewMemoryStore(), lostAnswers(1, &count))
		c := s.client(t, fast)
		task, err := c.CreateTask(ctx, app, client.NewTask{EventType: "x", RunAt: time.Now().Add(time.Hour), IdempotencyKey: "k-1"})
		if err != nil {
			t.Fatal(err)
		}
		if count.Load() != 2 {
			t.Errorf("%d requests, want 2", count.Load())
		}
		page, err := c.ListTasks(ctx, app, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Tasks) != 1 || page.Tasks[0].ID != task.ID {
			t.Errorf("%d tasks after a retried create, want the one", len(page.Tasks))
		}
	})
	t.Run("create without a key is sent once", func(t *testing.T) {
		t.Parallel()
		var count atomic.Int64
		s := newServer(t, tasks.NewMemoryStore(), lostAnswers(1, &count))
		_, err := s.client(t, fast).CreateTask(ctx, app, client.NewTask{EventType: "x", RunAt: time.Now().Add(time.Hour)})
		var e *client.Error
		if err == nil || errors.As(err, &e) || count.Load() != 1 {
			t.Errorf("%v after %d requests, want a network error after 1", err, count.Load())
		}
	})
	t.Run("a canceled context stops retrying", func(t *testing.T) {
		t.Parallel()
		var count atomic.Int64
		answered := make(chan struct{}, 100)
		s := newServer(t, tasks.NewMemoryStore(), flakyNotify(100, http.StatusServiceUnavailable, "", &count, answered))
		cfg := *fast
		cfg.MinBackoff, cfg.MaxBackoff, cfg.MaxRetries = time.Hour, time.Hour, 10
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan error)
		go func() {
			_, err := s.client(t, &cfg).Endpoints(ctx, app)
			done <- err
		}()
		<-answered // the client now waits an hour before its retry
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, client.ErrUnavailable) && !errors.Is(err, context.Canceled) {
				t.Errorf("%v, want the last answer's ErrUnavailable, or context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("still retrying 10s after the context was canceled")
		}
	})
}

// TestClient_ManyRetries: the backoff of a late retry stays at MaxBackoff:
// doubling MinBackoff for each retry must not overflow time.Duration into
// a negative or zero wait (a panic, or retries with no wait at all).
func TestClient_ManyRetries(t *testing.T) {
	t.Parallel()
	var count atomic.Int64
	s := newServer(t, tasks.NewMemoryStore(), flaky(1000, http.StatusServiceUnavailable, "", &count))
	cfg := *fast
	cfg.MaxRetries, cfg.MaxBackoff = 70, time.Millisecond
	start := time.Now()
	_, err := s.client(t, &cfg).Endpoints(context.Background(), app)
	if !errors.Is(err, client.ErrUnavailable) || count.Load() != 71 {
		t.Errorf("%v after %d requests, want ErrUnavailable after 71", err, count.Load())
	}
	// Each retry waits at least half of MaxBackoff.
	if waited := time.Since(start); waited < 70*cfg.MaxBackoff/2 {
		t.Errorf("70 retries took %v, want at least %v", waited, 70*cfg.MaxBackoff/2)
	}
}

// TestClient_ReplayTasksSentOnce: ReplayTasks is not safe to send again: a
// replayed task that fails again before the retry arrives would be
// replayed, and run, once more. A lost answer is returned, not retried;
// CancelTasks, which cancels nothing twice, is retried.
func TestClient_ReplayTasksSentOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := client.BulkFilter{CreatedSince: time.Now().Add(-time.Hour), CreatedBefore: time.Now().Add(time.Hour)}
	var count atomic.Int64
	s := newServer(t, tasks.NewMemoryStore(), lostAnswers(1, &count))
	_, err := s.client(t, fast).ReplayTasks(ctx, app, f)
	var e *client.Error
	if err == nil || errors.As(err, &e) || count.Load() != 1 {
		t.Errorf("ReplayTasks: %v after %d requests, want a network error after 1", err, count.Load())
	}
	count.Store(0)
	if _, err := s.client(t, fast).CancelTasks(ctx, app, f); err != nil || count.Load() != 2 {
		t.Errorf("CancelTasks: %v after %d requests, want success after 2", err, count.Load())
	}
}
