package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/taskwheel/tasks/webhook"
)

// userAgent names the library in every delivery.
const userAgent = "taskwheel-tasks/" + Version + " (+https://github.com/taskwheel/tasks)"

// defaultRetrySchedule is the default WebhookConfig.RetrySchedule, as
// documented there. Nothing writes to it.
var defaultRetrySchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// retryDelay is the delay before the attempt after failed attempt number
// attempt, by the schedule, with ±10% jitter.
func retryDelay(schedule []time.Duration, attempt int) time.Duration {
	if len(schedule) == 0 {
		return 0
	}
	d := schedule[min(max(attempt, 1), len(schedule))-1]
	return d - d/10 + rand.N(d/5+1)
}

// errNoRoute is the error of an attempt of a task that has neither a func
// nor an active endpoint subscribed to its event type. It is retried like a
// failed delivery: an endpoint may be created or reactivated, or a func
// registered by the next version of a process, in the meantime.
func errNoRoute(eventType string) error {
	return fmt.Errorf("no route: no func registered for event type %q and no active endpoint of the app subscribed to it", eventType)
}

// deliveryBody returns what a delivery of t sends: the fields of the task
// that do not change between attempts, so that every attempt sends the same
// bytes, with its data byte for byte as given (encoding/json would compact
// it).
func deliveryBody(t *Task) ([]byte, error) {
	head, err := json.Marshal(struct {
		ID               string     `json:"id"`
		AppID            string     `json:"app_id"`
		EventType        string     `json:"event_type"`
		ScheduledRunTime *time.Time `json:"scheduled_run_time"`
		CreatedAt        time.Time  `json:"created_at"`
	}{t.ID, t.AppID, t.EventType, t.ScheduledRunTime, t.CreatedAt})
	if err != nil {
		return nil, err
	}
	body := append(head[:len(head)-1], `,"data":`...)
	return append(append(body, t.Data...), '}'), nil
}

// delivered is the result of delivering one attempt of a task to one endpoint.
type delivered struct {
	attempt    Attempt
	retryAfter time.Duration // the endpoint's Retry-After, capped
}

// deliver sends task t to each active endpoint of its app subscribed to its
// event type that has not settled it (see settles) in an earlier attempt of
// the task's current run. A run begins when the task is created and again
// each time it is replayed: a replay sends to every endpoint anew, as a
// retry within a run does not.
//
// It returns the attempts to record, the endpoint that acknowledged last,
// and: nil once every endpoint settled and one acknowledged; a permanent
// error if all answered 410; else an error that retries the task after the
// retry schedule's delay, or after the longest Retry-After if that is
// longer.
func (e *Engine) deliver(ctx context.Context, t *Task) (attempts []Attempt, endpointID string, err error) {
	eps, err := e.deliveryEndpoints(ctx, t.AppID)
	if err != nil {
		return nil, "", fmt.Errorf("list endpoints: %w", err)
	}
	// The run's attempts are numbered from t.ReplayedAfter+1: a store
	// inserts a task with 0 attempts, Claim counts them up, and Replay
	// keeps the count and sets ReplayedAfter to it. Only a claimed attempt
	// has records (from Finish or Rescue), so the run's first attempt has
	// no history to read.
	// An attempt that waited for an endpoint's capacity (see
	// endpoint_limits.go) left records under the number the next attempt
	// takes again: with limits, the history is read for every attempt, and
	// so it is for a task with an EndpointID, which such an attempt that
	// an endpoint acknowledged set, as the limits may have been removed
	// since (a task replayed keeps it too: it costs that one a read).
	var history []Attempt
	if t.Attempts > t.ReplayedAfter+1 || t.EndpointID != nil || slices.ContainsFunc(eps, (*Endpoint).limited) {
		if history, err = e.store.Attempts(ctx, t.ID); err != nil {
			return nil, "", fmt.Errorf("read attempts: %w", err)
		}
	}
	var settled map[string]bool // made when the history settles one
	acknowledged := false       // by any endpoint, in this run
	for _, a := range history {
		if a.Number > t.ReplayedAfter && a.EndpointID != "" && settles(&a) {
			if settled == nil {
				settled = make(map[string]bool)
			}
			settled[a.EndpointID] = true
			acknowledged = acknowledged || acknowledges(&a)
		}
	}
	var targets []*Endpoint
	subscribed := 0 // endpoints the event type goes to, settled or not
	for _, ep := range eps {
		if ep.Status == EndpointActive && ep.Subscribed(t.EventType) {
			subscribed++
			if !settled[ep.ID] {
				targets = append(targets, ep)
			}
		}
	}
	if len(targets) == 0 {
		switch {
		case len(settled) == 0:
			return nil, "", RetryAfter(retryDelay(e.cfg.Webhooks.RetrySchedule, t.Attempts), errNoRoute(t.EventType))
		case !acknowledged:
			return nil, "", errAllGone
		}
		return nil, "", nil // every endpoint settled in earlier attempts of the run
	}
	body, err := deliveryBody(t)
	if err != nil {
		return nil, "", Permanent(fmt.Errorf("encode delivery: %w", err))
	}
	// Take the capacity of the endpoints with limits: those without any
	// wait, and a store error fails the delivery to its endpoint.
	var (
		waits   endpointWaits
		results []delivered
		unsent  []*Endpoint // of results, so far
		sends   = targets
	)
	if slices.ContainsFunc(targets, (*Endpoint).limited) {
		sends = nil
		for _, ep := range targets {
			if !ep.limited() {
				sends = append(sends, ep)
				continue
			}
			ok, err := e.takeEndpoint(ctx, ep, t, &waits, subscribed == 1)
			switch {
			case err != nil:
				unsent = append(unsent, ep)
				results = append(results, delivered{attempt: Attempt{TaskID: t.ID, Number: t.Attempts, EndpointID: ep.ID,
					StartedAt: time.Now().UTC().Truncate(time.Microsecond), Error: takeError(err).Error()}})
			case ok:
				sends = append(sends, ep)
			}
		}
	}
	first := len(results)
	results = slices.Grow(results, len(sends))[:first+len(sends)]
	if len(unsent) > 0 {
		targets = append(unsent, sends...) // in the order of results
	} else {
		targets = sends
	}
	send := func(i int, ep *Endpoint) {
		results[first+i] = e.deliverTo(ctx, ep, t, body)
		if ep.limited() {
			e.releaseEndpoint(ctx, ep, t)
		}
		e.recordHealth(ctx, ep, &results[first+i].attempt)
	}
	if len(sends) == 1 {
		send(0, sends[0]) // the usual case: no goroutine to start and wait for
	} else {
		var wg sync.WaitGroup
		for i, ep := range sends {
			wg.Go(func() { send(i, ep) })
		}
		wg.Wait()
	}

	var failed []string
	var wait time.Duration
	for i, r := range results {
		attempts = append(attempts, r.attempt)
		switch {
		case !settles(&r.attempt):
			failed = append(failed, fmt.Sprintf("endpoint %s: %s", targets[i].ID, r.attempt.Error))
			wait = max(wait, r.retryAfter)
		case acknowledges(&r.attempt):
			endpointID = targets[i].ID
			acknowledged = true
		}
	}
	switch {
	case len(failed) > 0:
		err := fmt.Errorf("delivery failed to %d of %d endpoints: %s", len(failed), len(targets), strings.Join(failed, "; "))
		return attempts, endpointID, RetryAfter(max(wait, retryDelay(e.cfg.Webhooks.RetrySchedule, t.Attempts)), err)
	case waits.skipped > 0:
		return attempts, endpointID, e.wait(&waits)
	case !acknowledged:
		return attempts, "", errAllGone
	}
	return attempts, endpointID, nil
}

// errAllGone fails a task that every endpoint turned away with 410 Gone.
var errAllGone = Permanent(errors.New("every endpoint answered 410 Gone"))

// errGone is the error of a delivery attempt that its endpoint answered,
// in full, with 410 Gone.
var errGone = errors.New("endpoint answered 410 Gone: no more deliveries to it")

// An endpoint's answer counts only when it arrives in full: status line,
// headers and body (up to WebhookConfig.MaxResponseBytes) within the
// timeout. An answer cut short, by a connection closed early or by the
// timeout passing while the body trickles in, is a failed attempt whatever
// its status, since the receiver may have failed before it had taken the
// task; its record keeps the status code and gets an error. acknowledges
// and settles read this rule off an attempt's record, and deliver asks them
// both of the attempts it has just made and of those in the history, so
// that the two always agree.

// acknowledges reports whether the delivery attempt a acknowledged its
// task: its endpoint answered with a 2xx, in full.
func acknowledges(a *Attempt) bool {
	return a.StatusCode >= 200 && a.StatusCode < 300 && a.Error == ""
}

// settles reports whether the delivery attempt a ends the deliveries of its
// task to its endpoint: it acknowledged the task, or its endpoint answered,
// in full, with 410 Gone, which asks for no more.
func settles(a *Attempt) bool {
	return acknowledges(a) || a.StatusCode == http.StatusGone && a.Error == errGone.Error()
}

// deliverTo makes one signed POST of body to ep. Its attempt's record
// follows the rule above.
func (e *Engine) deliverTo(ctx context.Context, ep *Endpoint, t *Task, body []byte) (d delivered) {
	start := time.Now()
	d = delivered{attempt: Attempt{TaskID: t.ID, Number: t.Attempts, EndpointID: ep.ID, StartedAt: start.UTC().Truncate(time.Microsecond)}}
	defer func() { d.attempt.Duration = time.Since(start) }()
	fail := func(err error) delivered {
		d.attempt.Error = err.Error()
		return d
	}
	signed, err := webhook.Sign(ep.secrets(start), t.ID, start, body)
	if err != nil {
		return fail(fmt.Errorf("sign: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return fail(err)
	}
	req.Header = signed
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept-Encoding", "identity") // as the client would, without cloning req
	if spanCtx, span := e.obs.deliverySpan(ctx, t, ep, req.Header); span != nil {
		req = req.WithContext(spanCtx)
		defer func() {
			if d.attempt.StatusCode != 0 {
				span.SetAttributes(semconv.HTTPResponseStatusCode(d.attempt.StatusCode))
			}
			if d.attempt.Error != "" {
				span.SetStatus(codes.Error, d.attempt.Error)
			}
			span.End()
		}()
	}
	defer func() { e.obs.delivered(ctx, ep, d.attempt.StatusCode, time.Since(start)) }()
	resp, err := e.webhooks.Do(req)
	if err != nil {
		return fail(err)
	}
	d.attempt.StatusCode = resp.StatusCode
	buf := excerpts.Get().(*[ResponseExcerptBytes]byte)
	n, _, readErr := readResponse(resp.Body, e.cfg.Webhooks.MaxResponseBytes, buf[:])
	resp.Body.Close()
	d.attempt.Response = strings.ToValidUTF8(string(buf[:n]), "\uFFFD")
	excerpts.Put(buf)
	switch {
	case readErr != nil: // an answer cut short counts for nothing
		return fail(fmt.Errorf("read response: %w", readErr))
	case resp.StatusCode == http.StatusGone:
		return fail(errGone)
	case acknowledges(&d.attempt):
		return d
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if ra, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			d.retryAfter = min(ra, e.cfg.Webhooks.MaxRetryAfter)
		}
	}
	return fail(fmt.Errorf("endpoint answered %s", resp.Status))
}

// excerpts holds the buffers that deliveries read the excerpts of their
// responses into.
var excerpts = sync.Pool{New: func() any { return new([ResponseExcerptBytes]byte) }}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(min(s, int64(365*24*time.Hour/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
