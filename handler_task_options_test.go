package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// TestHandler_TaskOptions: max_attempts and timeout on create set the
// task's own, bounded, with 400s naming the field.
func TestHandler_TaskOptions(t *testing.T) {
	t.Parallel()
	ran := make(chan time.Duration, 10)
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{
		cfg: &tasks.Config{MaxAttempts: 5, Timeout: time.Hour},
		funcs: map[string]tasks.Func{
			"x": func(context.Context, *tasks.Task) error { return nil },
			"slow": func(ctx context.Context, _ *tasks.Task) error {
				deadline, _ := ctx.Deadline()
				ran <- time.Until(deadline)
				return tasks.Permanent(errors.New("stop"))
			},
		}})

	t.Run("Set", func(t *testing.T) {
		r := a.do("POST", "/apps/app_1/tasks", `{"event_type":"slow","data":null,"max_attempts":3,"timeout":2}`)
		got := r.task(t, http.StatusCreated)
		if got.MaxAttempts != 3 {
			t.Errorf("max_attempts %d, want 3", got.MaxAttempts)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(r.body, &raw); err != nil {
			t.Fatal(err)
		}
		if string(raw["timeout"]) != "2" {
			t.Errorf("timeout %s, want 2 (seconds)", raw["timeout"])
		}
		select {
		case left := <-ran:
			if left > 2*time.Second || left <= 0 {
				t.Errorf("the attempt's context had %v left, want at most the task's 2s", left)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the task did not run within 10s")
		}
	})

	t.Run("Defaults", func(t *testing.T) {
		for _, body := range []string{
			`{"event_type":"x","data":null}`,
			`{"event_type":"x","data":null,"max_attempts":null,"timeout":null}`,
		} {
			r := a.do("POST", "/apps/app_1/tasks", body)
			got := r.task(t, http.StatusCreated)
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(r.body, &raw); err != nil {
				t.Fatal(err)
			}
			if _, ok := raw["timeout"]; ok || got.MaxAttempts != 5 {
				t.Errorf("%s: max_attempts %d, timeout %s; want the engine's 5 and no timeout member", body, got.MaxAttempts, raw["timeout"])
			}
		}
	})

	t.Run("Bounds", func(t *testing.T) {
		for _, tc := range []struct{ field, value string }{
			{"max_attempts", "0"}, {"max_attempts", "101"}, {"max_attempts", "-1"}, {"max_attempts", "2.5"},
			{"max_attempts", "1e2"}, {"max_attempts", `"3"`}, {"max_attempts", "99999999999999999999999"},
			{"timeout", "0"}, {"timeout", "86401"}, {"timeout", "1.5"}, {"timeout", `"30s"`}, {"timeout", "true"},
		} {
			r := a.do("POST", "/apps/app_1/tasks", `{"event_type":"x","data":null,"`+tc.field+`":`+tc.value+`}`)
			r.problem(t, http.StatusBadRequest, tc.field, tc.field, "whole number")
		}
		a.do("POST", "/apps/app_1/tasks", `{"event_type":"x","data":null,"max_attempts":100,"timeout":86400}`).task(t, http.StatusCreated)
	})
}

// TestHandler_TaskOptionsIdempotency_A14: max_attempts and timeout are part
// of the request that an Idempotency-Key names: the same request again gets
// the task; one asking for other options gets 422, not a task whose options
// it did not ask for.
func TestHandler_TaskOptionsIdempotency_A14(t *testing.T) {
	t.Parallel()
	a := newAPI(t, tasks.NewMemoryStore(), apiOpts{cfg: &tasks.Config{MaxAttempts: 5}, noStart: true})
	key := header("Idempotency-Key", "opts-1")
	const body = `{"event_type":"x","data":{"a":1},"max_attempts":3,"timeout":60}`
	first := a.do("POST", "/apps/app_1/tasks", body, key).task(t, http.StatusCreated)
	again := a.do("POST", "/apps/app_1/tasks", body, key)
	if got := again.task(t, http.StatusCreated); got.ID != first.ID || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the same request again: task %s, Idempotent-Replayed %q; want %s, true", got.ID, again.header.Get("Idempotent-Replayed"), first.ID)
	}
	for _, other := range []string{
		`{"event_type":"x","data":{"a":1},"max_attempts":50,"timeout":60}`,
		`{"event_type":"x","data":{"a":1},"max_attempts":3,"timeout":5}`,
		`{"event_type":"x","data":{"a":1},"max_attempts":3}`,
		`{"event_type":"x","data":{"a":1},"max_attempts":5,"timeout":60}`,
		`{"event_type":"x","data":{"a":1},"max_attempts":3,"timeout":60,"flow_key":"mail"}`,
	} {
		a.do("POST", "/apps/app_1/tasks", other, key).problem(t, http.StatusUnprocessableEntity, "Idempotency-Key", "another request")
	}

	// A task created without options is replayed to a request without them.
	key = header("Idempotency-Key", "opts-2")
	const plain = `{"event_type":"x","data":null}`
	first = a.do("POST", "/apps/app_1/tasks", plain, key).task(t, http.StatusCreated)
	for _, same := range []string{plain, `{"event_type":"x","data":null,"flow_key":"x"}`} {
		if got := a.do("POST", "/apps/app_1/tasks", same, key).task(t, http.StatusCreated); got.ID != first.ID {
			t.Errorf("%s again: task %s, want %s", same, got.ID, first.ID)
		}
	}
	for _, other := range []string{
		`{"event_type":"x","data":null,"max_attempts":2}`,
		`{"event_type":"x","data":null,"timeout":30}`,
		`{"event_type":"x","data":null,"flow_key":"mail"}`,
	} {
		a.do("POST", "/apps/app_1/tasks", other, key).problem(t, http.StatusUnprocessableEntity, "Idempotency-Key", "another request")
	}
}
