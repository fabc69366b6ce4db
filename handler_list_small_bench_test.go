package tasks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// BenchmarkHandler_ListSmallTasks measures what bounding the memory of
// listings must not cost: the time to answer one page of a listing of
// 1,000 tasks of about 100 bytes of data from SQLite, with limit=1000 and
// limit=50, through the API handler with its default configuration.
func BenchmarkHandler_ListSmallTasks(b *testing.B) {
	const tasksListed = 1000
	s := testStores[1] // sqlite
	e, err := tasks.NewEngine(s.open(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	e.Register("x", func(context.Context, *tasks.Task) error { return nil })
	for i := range tasksListed {
		data := fmt.Sprintf(`{"n":%d,"s":"%s"}`, i, strings.Repeat("d", 86)) // about 100 bytes
		if _, err := e.Enqueue(b.Context(), tasks.NewTask{AppID: "app_1", EventType: "x", Data: json.RawMessage(data), RunAt: time.Now().Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
	}
	h := e.Handler(&tasks.HandlerConfig{Unauthenticated: true})
	for _, limit := range []int{1000, 50} {
		b.Run(fmt.Sprintf("%s/limit=%d", s.name, limit), func(b *testing.B) {
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest("GET", fmt.Sprintf("/apps/app_1/tasks?limit=%d", limit), nil))
				var page struct{ Data []json.RawMessage }
				if err := json.Unmarshal(w.Body.Bytes(), &page); w.Code != http.StatusOK || err != nil || len(page.Data) != limit {
					b.Fatalf("got %d, %d tasks (%v), want 200 and %d tasks", w.Code, len(page.Data), err, limit)
				}
				b.SetBytes(int64(w.Body.Len()))
			}
		})
	}
}
