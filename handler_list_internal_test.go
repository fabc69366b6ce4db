package tasks

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// hookWriter is a ResponseRecorder that calls onWrite before its first
// Write.
type hookWriter struct {
	*httptest.ResponseRecorder
	onWrite sync.Once
	hook    func()
}

func (w *hookWriter) Write(b []byte) (int, error) {
	w.onWrite.Do(w.hook)
	return w.ResponseRecorder.Write(b)
}

// TestHandler_ListWaitsTooLong: a listing that waits for the listings'
// budget as long as it would wait for the store answers all the same: a
// 503 problem before it sent anything, else the end of its page, valid
// JSON with a next_cursor from which the rest comes once the budget has
// room.
func TestHandler_ListWaitsTooLong(t *testing.T) {
	t.Parallel()
	const maxData = 16 << 10
	e, err := NewEngine(NewMemoryStore(), &Config{MaxDataBytes: maxData})
	if err != nil {
		t.Fatal(err)
	}
	e.Register("x", func(context.Context, *Task) error { return nil })
	var want []string
	for range 3 {
		task, err := e.Enqueue(t.Context(), NewTask{AppID: "app_1", EventType: "x", Data: json.RawMessage(`"` + strings.Repeat("x", maxData-2) + `"`), RunAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		want = slices.Insert(want, 0, task.ID)
	}
	var log strings.Builder
	h := e.Handler(&HandlerConfig{Unauthenticated: true, MaxPageBytes: 64 << 10, MaxListBytes: 1}).(*handler)
	h.log = slog.New(slog.NewTextHandler(&log, nil))
	h.storeTimeout = 50 * time.Millisecond
	all := h.lists.readMin // MaxListBytes 1 leaves room for one read of one task
	list := func(cursor string, hook func()) (*httptest.ResponseRecorder, []string, *string) {
		t.Helper()
		w := &hookWriter{ResponseRecorder: httptest.NewRecorder(), hook: hook}
		h.ServeHTTP(w, httptest.NewRequest("GET", "/apps/app_1/tasks?limit=1000"+cursor, nil))
		var page struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
			NextCursor *string `json:"next_cursor"`
		}
		if w.Code == http.StatusOK {
			if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
				t.Fatalf("200 with %.200q: %v", w.Body, err)
			}
		}
		var ids []string
		for _, task := range page.Data {
			ids = append(ids, task.ID)
		}
		return w.ResponseRecorder, ids, page.NextCursor
	}

	// All the budget is taken: the listing answers 503.
	if err := h.lists.sem.Acquire(t.Context(), all); err != nil {
		t.Fatal(err)
	}
	w, _, _ := list("", func() {})
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "too many task listings") {
		t.Errorf("with no room: got %d, Retry-After %q, %s; want 503, Retry-After, too many task listings", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	h.lists.sem.Release(all)

	// The budget is taken while the first task is sent: the page ends
	// after it.
	var taken int64
	w, got, next := list("", func() {
		taken = all - (maxData + taskFields) // all but the room of the task being sent
		if !h.lists.sem.TryAcquire(taken) {
			t.Error("the task being sent holds more than its room")
			taken = 0
		}
	})
	h.lists.sem.Release(taken)
	if w.Code != http.StatusOK || len(got) != 1 || next == nil {
		t.Fatalf("with no room after the first task: got %d, %d tasks, next_cursor %v; want 200, 1 task and a next_cursor", w.Code, len(got), next)
	}
	if !strings.Contains(log.String(), "too many task listings") {
		t.Errorf("log %q does not say why the page ended early", log.String())
	}
	w, rest, next := list("&cursor="+*next, func() {})
	if got = append(got, rest...); w.Code != http.StatusOK || next != nil || !slices.Equal(got, want) {
		t.Errorf("then: got %d, next_cursor %v, listed %v; want 200, null, %v", w.Code, next, got, want)
	}
}
