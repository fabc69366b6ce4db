package tasks_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/webhook"
)

// loopback lets tests deliver to httptest servers, which the SSRF guard
// refuses by default.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// receiver is a webhook endpoint: an httptest server that records each
// request and answers with the next of its answers (the last one repeats).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*received
	answers  []func(w http.ResponseWriter)
	got      chan *received
}

type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

func newReceiver(t *testing.T, answers ...func(w http.ResponseWriter)) *receiver {
	t.Helper()
	if len(answers) == 0 {
		answers = []func(http.ResponseWriter){status(http.StatusNoContent)}
	}
	rc := &receiver{answers: answers, got: make(chan *received, 100)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := &received{r.Header.Clone(), body, time.Now()}
		rc.mu.Lock()
		rc.requests = append(rc.requests, req)
		answer := rc.answers[min(len(rc.requests), len(rc.answers))-1]
		rc.mu.Unlock()
		answer(w)
		rc.got <- req
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.requests)
}

func webhookConfig(schedule ...time.Duration) *tasks.Config {
	if schedule == nil {
		schedule = []time.Duration{10 * time.Millisecond}
	}
	return &tasks.Config{Webhooks: &tasks.WebhookConfig{AllowNetworks: loopback, RetrySchedule: schedule}}
}

func TestDelivery(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		t.Run("a func takes precedence and has its attempts recorded", func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t)
			e := startEngine(t, newStore(t), webhookConfig(), map[string]tasks.Func{
				"x": func(ctx context.Context, task *tasks.Task) error {
					if task.Attempts == 1 {
						return errors.New("first try fails")
					}
					return nil
				},
			})
			createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL})
			task := enqueue(t, e, tasks.NewTask{EventType: "x"})
			waitState(t, e, task.ID, tasks.StateCompleted)
			as, err := e.Attempts(context.Background(), task.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(as) != 2 || as[0].Number != 1 || as[0].Error != "first try fails" || as[1].Number != 2 || as[1].Error != "" || as[0].EndpointID != "" {
				t.Errorf("attempts = %+v, want a failed attempt 1 and a successful attempt 2 of the func", as)
			}
			if n := rc.count(); n != 0 {
				t.Errorf("endpoint received %d deliveries of a task with a func", n)
			}
		})
		t.Run("no func and no endpoint: retried, then failed, saying so", func(t *testing.T) {
			t.Parallel()
			e := startEngine(t, newStore(t), webhookConfig(), nil)
			task := enqueue(t, e, tasks.NewTask{EventType: "nobody.listens", MaxAttempts: 3})
			got := waitState(t, e, task.ID, tasks.StateFailed)
			if !strings.Contains(got.LastError, "no route") || got.Attempts != 3 {
				t.Errorf("last error %q after %d attempts, want a no-route error after 3", got.LastError, got.Attempts)
			}
		})
		t.Run("an inactive endpoint's tasks wait for it", func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t)
			e := startEngine(t, newStore(t), webhookConfig(100*time.Millisecond), nil)
			inactive := tasks.EndpointInactive
			ep := createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL, Status: inactive})
			task := enqueue(t, e, tasks.NewTask{EventType: "x"})
			waitState(t, e, task.ID, tasks.StateRetrying)
			active := tasks.EndpointActive
			if _, err := e.UpdateEndpoint(context.Background(), ep.ID, tasks.EndpointUpdate{Status: &active}); err != nil {
				t.Fatal(err)
			}
			waitState(t, e, task.ID, tasks.StateCompleted)
			if n := rc.count(); n != 1 {
				t.Errorf("endpoint got %d deliveries, want 1", n)
			}
		})
		t.Run("a signed delivery of stable bytes", func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t)
			e := startEngine(t, newStore(t), webhookConfig(), nil)
			ep := createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL + "/hook", EnabledEvents: []string{"user.created"}})
			data := json.RawMessage(`{"b": 1,  "a": [true, null]}`)
			task := enqueue(t, e, tasks.NewTask{EventType: "user.created", Data: data})
			req := <-rc.got
			done := waitState(t, e, task.ID, tasks.StateCompleted)
			if err := webhook.Verify(ep.Secret, req.header, req.body); err != nil {
				t.Errorf("Verify: %v", err)
			}
			if req.header.Get("webhook-id") != task.ID || !strings.HasPrefix(req.header.Get("User-Agent"), "taskwheel-tasks/") ||
				req.header.Get("Content-Type") != "application/json" || !strings.HasPrefix(req.header.Get("HostedHooks-Signature"), "t=") {
				t.Errorf("headers = %v", req.header)
			}
			var body struct {
				ID        string          `json:"id"`
				EventType string          `json:"event_type"`
				Data      json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(req.body, &body); err != nil || body.ID != task.ID || body.EventType != "user.created" || string(body.Data) != string(data) {
				t.Errorf("body %s (%v), want the task with its data byte for byte", req.body, err)
			}
			if done.EndpointID == nil || *done.EndpointID != ep.ID {
				t.Errorf("endpoint_id = %v, want %s", done.EndpointID, ep.ID)
			}
			as, _ := e.Attempts(context.Background(), task.ID)
			if len(as) != 1 || as[0].EndpointID != ep.ID || as[0].StatusCode != http.StatusNoContent || as[0].Duration <= 0 {
				t.Errorf("attempts = %+v", as)
			}
		})
		t.Run("each endpoint acknowledges separately; retries resend the same bytes (W16)", func(t *testing.T) {
			t.Parallel()
			ok := newReceiver(t)
			flaky := newReceiver(t, status(http.StatusInternalServerError), status(http.StatusOK))
			// A retry over a second later, so that its timestamp differs.
			e := startEngine(t, newStore(t), webhookConfig(1100*time.Millisecond), nil)
			createEndpoint(t, e, tasks.NewEndpoint{URL: ok.URL})
			epFlaky := createEndpoint(t, e, tasks.NewEndpoint{URL: flaky.URL})
			createEndpoint(t, e, tasks.NewEndpoint{URL: ok.URL, Status: tasks.EndpointInactive})
			createEndpoint(t, e, tasks.NewEndpoint{URL: ok.URL, EnabledEvents: []string{"other.event"}})
			task := enqueue(t, e, tasks.NewTask{EventType: "x"})
			waitState(t, e, task.ID, tasks.StateCompleted)
			if n := ok.count(); n != 1 {
				t.Errorf("the endpoint that acknowledged at once got %d deliveries, want 1", n)
			}
			if n := flaky.count(); n != 2 {
				t.Fatalf("the flaky endpoint got %d deliveries, want 2", n)
			}
			first, second := flaky.requests[0], flaky.requests[1]
			if string(first.body) != string(second.body) || first.header.Get("webhook-id") != second.header.Get("webhook-id") {
				t.Errorf("a retry changed the body or webhook-id:\n%s\n%s", first.body, second.body)
			}
			if first.header.Get("webhook-timestamp") == second.header.Get("webhook-timestamp") ||
				first.header.Get("webhook-signature") == second.header.Get("webhook-signature") {
				t.Errorf("a retry kept its timestamp or signature")
			}
			if err := webhook.Verify(epFlaky.Secret, second.header, second.body); err != nil {
				t.Errorf("Verify of the retry: %v", err)
			}
			as, _ := e.Attempts(context.Background(), task.ID)
			if len(as) != 3 || as[2].Number != 2 || as[2].EndpointID != epFlaky.ID || as[2].StatusCode != http.StatusOK {
				t.Errorf("attempts = %+v, want two in attempt 1 and the flaky endpoint's in attempt 2", as)
			}
		})
	})
}

// TestDelivery_Replay checks that a replay is a new run, delivered again to
// every endpoint, whatever they answered in earlier runs, and that the
// retries of a run skip only the endpoints that acknowledged in that run.
func TestDelivery_Replay(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		t.Run("to every endpoint, acknowledged or not", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ok, flaky := newReceiver(t), newReceiver(t, status(http.StatusBadRequest), status(http.StatusOK))
			e := startEngine(t, newStore(t), webhookConfig(time.Hour), nil)
			createEndpoint(t, e, tasks.NewEndpoint{URL: ok.URL})
			createEndpoint(t, e, tasks.NewEndpoint{URL: flaky.URL})
			task := enqueue(t, e, tasks.NewTask{EventType: "x", MaxAttempts: 1})
			waitState(t, e, task.ID, tasks.StateFailed)
			for i, want := range [][2]int{{2, 2}, {3, 3}} { // flaky acknowledges from the first replay on
				if _, err := e.Replay(ctx, task.ID); err != nil {
					t.Fatal(err)
				}
				waitState(t, e, task.ID, tasks.StateCompleted)
				if got := [2]int{ok.count(), flaky.count()}; got != want {
					t.Errorf("after replay %d: deliveries to the endpoint that acknowledged, the one that failed = %v, want %v", i+1, got, want)
				}
			}
		})
		t.Run("its retries skip the endpoints that acknowledged in its run", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ok := newReceiver(t)
			flaky := newReceiver(t, status(http.StatusOK), status(http.StatusInternalServerError), status(http.StatusOK))
			e := startEngine(t, newStore(t), webhookConfig(10*time.Millisecond), nil)
			epOK := createEndpoint(t, e, tasks.NewEndpoint{URL: ok.URL})
			epFlaky := createEndpoint(t, e, tasks.NewEndpoint{URL: flaky.URL})
			task := enqueue(t, e, tasks.NewTask{EventType: "x"})
			waitState(t, e, task.ID, tasks.StateCompleted)
			if _, err := e.Replay(ctx, task.ID); err != nil {
				t.Fatal(err)
			}
			got := waitState(t, e, task.ID, tasks.StateCompleted)
			if n, m := ok.count(), flaky.count(); got.Attempts != 3 || n != 2 || m != 3 {
				t.Fatalf("%d attempts; deliveries %d to the endpoint that always acknowledged, %d to the one that failed once; want 3 attempts, 2 and 3 deliveries", got.Attempts, n, m)
			}
			as, err := e.Attempts(ctx, task.ID)
			if err != nil {
				t.Fatal(err)
			}
			type record struct {
				number     int
				endpointID string
				status     int
			}
			want := []record{
				{1, epOK.ID, http.StatusNoContent}, {1, epFlaky.ID, http.StatusOK}, // the first run
				{2, epOK.ID, http.StatusNoContent}, {2, epFlaky.ID, http.StatusInternalServerError}, // the replay
				{3, epFlaky.ID, http.StatusOK}, // its retry
			}
			var records []record
			for _, a := range as {
				records = append(records, record{a.Number, a.EndpointID, a.StatusCode})
			}
			// The records of one attempt may come in any order.
			byNumberAndEndpoint := func(a, b record) int {
				return cmp.Or(cmp.Compare(a.number, b.number), strings.Compare(a.endpointID, b.endpointID))
			}
			slices.SortFunc(records, byNumberAndEndpoint)
			slices.SortFunc(want, byNumberAndEndpoint)
			if !slices.Equal(records, want) {
				t.Errorf("attempt records (number, endpoint, status) = %v, want %v", records, want)
			}
		})
		t.Run("to all when it never ran", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			a, b := newReceiver(t), newReceiver(t)
			e := startEngine(t, newStore(t), webhookConfig(time.Hour), nil)
			createEndpoint(t, e, tasks.NewEndpoint{URL: a.URL})
			createEndpoint(t, e, tasks.NewEndpoint{URL: b.URL})
			task := enqueue(t, e, tasks.NewTask{EventType: "x", RunAt: time.Now().Add(time.Hour)})
			if _, err := e.Cancel(ctx, task.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Replay(ctx, task.ID); err != nil {
				t.Fatal(err)
			}
			got := waitState(t, e, task.ID, tasks.StateCompleted)
			if got.Attempts != 1 || a.count() != 1 || b.count() != 1 {
				t.Errorf("%d attempts, deliveries %d and %d; want 1 attempt delivered to both", got.Attempts, a.count(), b.count())
			}
		})
	})
}

// TestDelivery_Outcomes checks how each answer of an endpoint counts (W5,
// W13).
func TestDelivery_Outcomes(t *testing.T) {
	t.Parallel()
	redirectTarget := newReceiver(t)
	for _, tt := range []struct {
		name     string
		answer   func(w http.ResponseWriter)
		state    tasks.State // after the first attempt
		errorHas string
	}{
		{"200 acknowledges", status(http.StatusOK), tasks.StateCompleted, ""},
		{"299 acknowledges", status(299), tasks.StateCompleted, ""},
		{"302 is not followed", func(w http.ResponseWriter) {
			w.Header().Set("Location", redirectTarget.URL)
			w.WriteHeader(http.StatusFound)
		}, tasks.StateRetrying, "302 Found"},
		{"400 fails", status(http.StatusBadRequest), tasks.StateRetrying, "400 Bad Request"},
		{"500 fails", status(http.StatusInternalServerError), tasks.StateRetrying, "500 Internal Server Error"},
		{"410 stops", status(http.StatusGone), tasks.StateFailed, "410 Gone"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, tt.answer)
			e := startEngine(t, tasks.NewMemoryStore(), webhookConfig(time.Hour), nil)
			createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL})
			task := enqueue(t, e, tasks.NewTask{EventType: "x"})
			got := waitState(t, e, task.ID, tt.state)
			if !strings.Contains(got.LastError, tt.errorHas) {
				t.Errorf("last error %q, want it to mention %q", got.LastError, tt.errorHas)
			}
		})
	}
	if n := redirectTarget.count(); n != 0 {
		t.Errorf("a redirect was followed %d times", n)
	}
	t.Run("429 and 503 Retry-After delay the next attempt, capped", func(t *testing.T) {
		t.Parallel()
		for _, code := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
			rc := newReceiver(t, func(w http.ResponseWriter) {
				w.Header().Set("Retry-After", "7200")
				w.WriteHeader(code)
			})
			cfg := webhookConfig(time.Millisecond)
			cfg.Webhooks.MaxRetryAfter = time.Minute
			e := startEngine(t, tasks.NewMemoryStore(), cfg, nil)
			createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL})
			task := enqueue(t, e, tasks.NewTask{EventType: "x"})
			<-rc.got
			got := waitState(t, e, task.ID, tasks.StateRetrying)
			if wait := time.Until(*got.NextAttemptAt); wait < 55*time.Second || wait > time.Minute {
				t.Errorf("%d: next attempt in %v, want the one-minute cap on Retry-After", code, wait)
			}
		}
	})
}

// TestDelivery_RetrySchedule has an endpoint fail every time (W14): the
// attempts follow the schedule, never earlier than its -10% jitter, then the
// task fails. A loaded machine may deliver late, so in real time only the
// lower bound is exact; TestDelivery_DefaultRetrySchedule pins both bounds
// in fake time.
func TestDelivery_RetrySchedule(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, status(http.StatusInternalServerError))
	schedule := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}
	cfg := webhookConfig(schedule...)
	cfg.MaxAttempts = 4
	e := startEngine(t, tasks.NewMemoryStore(), cfg, nil)
	createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL})
	task := enqueue(t, e, tasks.NewTask{EventType: "x"})
	got := waitState(t, e, task.ID, tasks.StateFailed)
	if got.Attempts != 4 || rc.count() != 4 {
		t.Fatalf("%d attempts, %d deliveries; want 4 of each", got.Attempts, rc.count())
	}
	for i, d := range schedule {
		gap := rc.requests[i+1].at.Sub(rc.requests[i].at)
		if lo, hi := d-d/10, d+d/10+time.Second; gap < lo || gap > hi {
			t.Errorf("delivery %d came %v after the one before, want %v ±10%% (and at most a second late)", i+2, gap, d)
		}
	}
}

// TestDelivery_DefaultRetrySchedule pins the documented defaults in fake
// time (W14): an endpoint that always fails gets DefaultMaxAttempts
// attempts, one more than the steps of the default RetrySchedule, spaced by those
// steps ±10% with jitter, and then the task fails.
func TestDelivery_DefaultRetrySchedule(t *testing.T) {
	t.Parallel()
	// The receiver lives outside the bubble and closes each connection, so
	// that no goroutine of the bubble waits on an idle connection (network
	// I/O is not durably blocking) and fake time can advance between
	// attempts.
	rc := newReceiver(t, func(w http.ResponseWriter) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusInternalServerError)
	})
	synctest.Test(t, func(t *testing.T) {
		cfg := &tasks.Config{
			PollInterval: time.Hour, // fewer idle wake-ups to simulate; retries need none
			Webhooks:     &tasks.WebhookConfig{AllowNetworks: loopback},
		}
		e := startEngine(t, tasks.NewMemoryStore(), cfg, nil)
		createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL})
		task := enqueue(t, e, tasks.NewTask{EventType: "x"})
		time.Sleep(48 * time.Hour) // the schedule spans about 27.5 h
		synctest.Wait()

		got, err := e.Get(t.Context(), task.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != tasks.StateFailed || got.Attempts != tasks.DefaultMaxAttempts {
			t.Fatalf("task %s after %d attempts, want failed after DefaultMaxAttempts (%d)", got.State, got.Attempts, tasks.DefaultMaxAttempts)
		}
		// The default WebhookConfig.RetrySchedule, as documented.
		want := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
		if tasks.DefaultMaxAttempts != len(want)+1 {
			t.Errorf("DefaultMaxAttempts is %d, want %d: one attempt, then one per step of the default RetrySchedule", tasks.DefaultMaxAttempts, len(want)+1)
		}
		attempts, err := e.Attempts(t.Context(), task.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(attempts) != got.Attempts || rc.count() != got.Attempts {
			t.Fatalf("%d attempts recorded, %d requests received, want %d of each", len(attempts), rc.count(), got.Attempts)
		}
		jittered := false
		for i := 1; i < len(attempts); i++ {
			gap, d := attempts[i].StartedAt.Sub(attempts[i-1].StartedAt), want[min(i, len(want))-1]
			if gap < d-d/10 || gap > d+d/10 {
				t.Errorf("attempt %d came %v after attempt %d, want %v ±10%%", i+1, gap, i, d)
			}
			jittered = jittered || gap != d
		}
		if !jittered {
			t.Error("every retry came exactly on its step, want ±10% jitter")
		}
	})
}

// cutShort answers 200 OK with a Content-Length of 100, sends 5 bytes of
// the body and closes the connection.
func cutShort(w http.ResponseWriter) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err) // the test server supports hijacking
	}
	defer conn.Close()
	buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello")
	buf.Flush()
}

// trickle answers 200 OK and sends its body a byte every 50 ms for a
// second, or until the connection breaks.
func trickle(w http.ResponseWriter) {
	w.WriteHeader(http.StatusOK)
	for range 20 {
		if _, err := w.Write([]byte(".")); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDelivery_CutShort checks that a 2xx whose body does not arrive in
// full acknowledges nothing, in the attempt that received it and in every
// later one: the task is sent again, and completes only once a second
// request is acknowledged, with an attempt recorded for each request.
func TestDelivery_CutShort(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		for _, tt := range []struct {
			name     string
			answer   func(w http.ResponseWriter)
			errorHas string
		}{
			{"by a closed connection", cutShort, "read response: unexpected EOF"},
			{"by the timeout (W10)", trickle, "read response: "},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				rc := newReceiver(t, tt.answer, status(http.StatusNoContent))
				cfg := webhookConfig(10 * time.Millisecond)
				cfg.Webhooks.Timeout = 200 * time.Millisecond
				e := startEngine(t, newStore(t), cfg, nil)
				ep := createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL})
				task := enqueue(t, e, tasks.NewTask{EventType: "x"})
				got := waitState(t, e, task.ID, tasks.StateCompleted)
				as, err := e.Attempts(context.Background(), task.ID)
				if err != nil {
					t.Fatal(err)
				}
				if n := rc.count(); n != 2 || got.Attempts != 2 || len(as) != 2 {
					t.Fatalf("%d requests, %d attempts, %d attempt records (%+v); want 2 of each", n, got.Attempts, len(as), as)
				}
				if as[0].Number != 1 || as[0].StatusCode != http.StatusOK || !strings.Contains(as[0].Error, tt.errorHas) {
					t.Errorf("attempt 1 = %+v, want a 200 with an error mentioning %q", as[0], tt.errorHas)
				}
				if as[1].Number != 2 || as[1].StatusCode != http.StatusNoContent || as[1].Error != "" {
					t.Errorf("attempt 2 = %+v, want a 204 without error", as[1])
				}
				if got.EndpointID == nil || *got.EndpointID != ep.ID {
					t.Errorf("task endpoint %v, want %s", got.EndpointID, ep.ID)
				}
			})
		}
	})
}

func TestDelivery_Bounds(t *testing.T) {
	t.Parallel()
	t.Run("a trickling receiver is cut at the timeout (W10)", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusOK)
			for range 20 {
				w.Write([]byte("."))
				w.(http.Flusher).Flush()
				time.Sleep(50 * time.Millisecond)
			}
		})
		cfg := webhookConfig(time.Hour)
		cfg.Webhooks.Timeout = 200 * time.Millisecond
		e := startEngine(t, tasks.NewMemoryStore(), cfg, nil)
		createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL})
		task := enqueue(t, e, tasks.NewTask{EventType: "x"})
		got := waitState(t, e, task.ID, tasks.StateRetrying)
		as, _ := e.Attempts(context.Background(), task.ID)
		if len(as) != 1 || as[0].Duration > time.Second || as[0].Error == "" {
			t.Errorf("attempts %+v (last error %q), want one cut short with an error", as, got.LastError)
		}
	})
	t.Run("a huge response is read only in part (W11)", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusBadRequest)
			chunk := []byte(strings.Repeat("é", 1<<15))
			for range 1 << 10 { // 64 MiB
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		})
		e := startEngine(t, tasks.NewMemoryStore(), webhookConfig(time.Hour), nil)
		createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL})
		task := enqueue(t, e, tasks.NewTask{EventType: "x"})
		waitState(t, e, task.ID, tasks.StateRetrying)
		as, _ := e.Attempts(context.Background(), task.ID)
		if len(as) != 1 || len(as[0].Response) > tasks.ResponseExcerptBytes || !strings.HasPrefix(as[0].Response, "éé") {
			t.Errorf("kept %d bytes of the response, want at most %d", len(as[0].Response), tasks.ResponseExcerptBytes)
		}
	})
	t.Run("a destination blocked at dial time (W3)", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t)
		store := tasks.NewMemoryStore()
		// One engine, allowed loopback, creates the endpoint; the engine
		// that delivers is not allowed it.
		admin := newEngine(t, store, webhookConfig())
		createEndpoint(t, admin, tasks.NewEndpoint{URL: rc.URL})
		e := startEngine(t, store, nil, nil)
		task := enqueue(t, e, tasks.NewTask{EventType: "x"})
		got := waitState(t, e, task.ID, tasks.StateRetrying)
		if !strings.Contains(got.LastError, "blocked") || rc.count() != 0 {
			t.Errorf("last error %q, %d deliveries; want a blocked destination and none", got.LastError, rc.count())
		}
	})
}

func TestEndpoints(t *testing.T) {
	t.Parallel()
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		e := newEngine(t, newStore(t), webhookConfig())
		ctx := context.Background()
		t.Run("create validates", func(t *testing.T) {
			for _, tt := range []struct {
				name  string
				ne    tasks.NewEndpoint
				field string
			}{
				{"no app", tasks.NewEndpoint{URL: "https://example.com/hook"}, "app_id"},
				{"no URL", tasks.NewEndpoint{AppID: "a"}, "url"},
				{"ftp URL", tasks.NewEndpoint{AppID: "a", URL: "ftp://example.com/"}, "url"},
				{"bad event", tasks.NewEndpoint{AppID: "a", URL: "https://example.com/", EnabledEvents: []string{"a b"}}, "enabled_events"},
				{"no events", tasks.NewEndpoint{AppID: "a", URL: "https://example.com/", EnabledEvents: []string{}}, "enabled_events"},
				{"bad status", tasks.NewEndpoint{AppID: "a", URL: "https://example.com/", Status: "paused"}, "status"},
			} {
				_, err := e.CreateEndpoint(ctx, tt.ne)
				var ve *tasks.ValidationError
				if !errors.As(err, &ve) || ve.Field != tt.field {
					t.Errorf("%s: CreateEndpoint = %v, want a ValidationError for %s", tt.name, err, tt.field)
				}
			}
			strict := newEngine(t, newStore(t), nil)
			_, err := strict.CreateEndpoint(ctx, tasks.NewEndpoint{AppID: "a", URL: "http://127.0.0.1:8080/hook"})
			var ve *tasks.ValidationError
			if !errors.As(err, &ve) || ve.Field != "url" {
				t.Errorf("loopback endpoint without an allow-list: %v, want a ValidationError for url (W1)", err)
			}
		})
		t.Run("create, update, rotate, delete", func(t *testing.T) {
			ep := createEndpoint(t, e, tasks.NewEndpoint{AppID: "crud", URL: "https://example.com/a", Description: "first"})
			if err := webhook.ValidateSecret(ep.Secret); err != nil || ep.Status != tasks.EndpointActive ||
				len(ep.EnabledEvents) != 1 || ep.EnabledEvents[0] != "*" {
				t.Fatalf("created %+v (secret: %v), want active, all events, a valid secret", ep, err)
			}
			inactive := tasks.EndpointInactive
			url := "https://example.com/b"
			up, err := e.UpdateEndpoint(ctx, ep.ID, tasks.EndpointUpdate{URL: &url, Status: &inactive, EnabledEvents: []string{"a.b"}})
			if err != nil || up.URL != url || up.Status != inactive || up.Description != "first" || up.Secret != ep.Secret {
				t.Fatalf("UpdateEndpoint = %+v, %v", up, err)
			}
			bad := "gopher://x"
			if _, err := e.UpdateEndpoint(ctx, ep.ID, tasks.EndpointUpdate{URL: &bad}); err == nil {
				t.Error("UpdateEndpoint accepted a gopher URL")
			}
			rotated, err := e.RotateEndpointSecret(ctx, ep.ID, time.Hour)
			if err != nil || rotated.Secret == ep.Secret || rotated.PreviousSecret != ep.Secret {
				t.Fatalf("RotateEndpointSecret = %+v, %v", rotated, err)
			}
			list, err := e.Endpoints(ctx, "crud")
			if err != nil || len(list) != 1 || list[0].URL != url {
				t.Errorf("Endpoints = %v, %v", list, err)
			}
			if err := e.DeleteEndpoint(ctx, ep.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Endpoint(ctx, ep.ID); !errors.Is(err, tasks.ErrNotFound) {
				t.Errorf("Endpoint after delete = %v, want ErrNotFound", err)
			}
		})
	})
}

// TestDelivery_Rotation checks that during the overlap both secrets sign
// (W18).
func TestDelivery_Rotation(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	e := startEngine(t, tasks.NewMemoryStore(), webhookConfig(), nil)
	old := createEndpoint(t, e, tasks.NewEndpoint{URL: rc.URL})
	rotated, err := e.RotateEndpointSecret(context.Background(), old.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, e, tasks.NewTask{EventType: "x"})
	req := <-rc.got
	if n := len(strings.Fields(req.header.Get("webhook-signature"))); n != 2 {
		t.Errorf("webhook-signature %q has %d entries, want 2", req.header.Get("webhook-signature"), n)
	}
	for _, secret := range []string{old.Secret, rotated.Secret} {
		if err := webhook.Verify(secret, req.header, req.body); err != nil {
			t.Errorf("Verify with %s: %v", secret[:10], err)
		}
	}
}
