package tasks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// rawPage is a page of a task listing with each task's JSON as sent.
type rawPage struct {
	Data       []json.RawMessage `json:"data"`
	NextCursor *string           `json:"next_cursor"`
}

// taskBytes is the size of the page's task JSON.
func (p *rawPage) taskBytes() int {
	n := 0
	for _, t := range p.Data {
		n += len(t)
	}
	return n
}

// ids returns the IDs of the page's tasks.
func (p *rawPage) ids(t *testing.T) []string {
	t.Helper()
	ids := make([]string, len(p.Data))
	for i, raw := range p.Data {
		var task tasks.Task
		if err := json.Unmarshal(raw, &task); err != nil {
			t.Fatalf("decode task %.100s: %v", raw, err)
		}
		ids[i] = task.ID
	}
	return ids
}

// listAll follows the pages of query (such as "limit=1000") from the
// first, checking each, and returns the IDs listed and the pages' count.
// The task JSON of a page is at most maxPage bytes, or one task.
func (a *api) listAll(t *testing.T, query string, maxPage int) (ids []string, pages int) {
	t.Helper()
	cursor := ""
	for {
		r := a.do("GET", "/apps/app_1/tasks?"+query+cursor, "")
		r.wantStatus(t, http.StatusOK)
		var p rawPage
		dec := json.NewDecoder(bytes.NewReader(r.body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil || p.Data == nil {
			t.Fatalf("page %d: %v; body %.200s", pages+1, err, r.body)
		}
		pages++
		if n := p.taskBytes(); n > maxPage && len(p.Data) > 1 {
			t.Errorf("page %d holds %d tasks of %d bytes of JSON, more than %d", pages, len(p.Data), n, maxPage)
		}
		ids = append(ids, p.ids(t)...)
		if p.NextCursor == nil {
			return ids, pages
		}
		if len(p.Data) == 0 || pages > 1000 {
			t.Fatalf("page %d: %d tasks and a next cursor", pages, len(p.Data))
		}
		cursor = "&cursor=" + *p.NextCursor
	}
}

// createData creates a task in app_1 for each of data, one after the
// other, and returns their IDs newest first, as a listing orders them.
func (a *api) createData(t *testing.T, data []string) []string {
	t.Helper()
	ids := make([]string, len(data))
	for i, d := range data {
		ids[len(data)-1-i] = a.createTask(`{"event_type":"x","scheduled_run_time":"` + future(time.Hour) + `","data":` + d + `}`).ID
	}
	return ids
}

// TestHandler_ListPageBytes: a listing of tasks whose data exceed the page
// bound comes in pages of at most that many bytes of task JSON (or one
// task), and a client following next_cursor reads every task once, in
// order.
func TestHandler_ListPageBytes(t *testing.T) {
	t.Parallel()
	t.Run("default bound", func(t *testing.T) {
		t.Parallel()
		a := newAPI(t, tasks.NewMemoryStore(), apiOpts{})
		data := make([]string, 10)
		for i := range data {
			data[i] = `"` + strings.Repeat(string(rune('a'+i)), 900<<10) + `"`
		}
		want := a.createData(t, data)
		got, pages := a.listAll(t, "limit=1000", tasks.DefaultMaxPageBytes)
		if !slices.Equal(got, want) || pages < 3 {
			t.Errorf("listed %d tasks in %d pages, want the %d tasks once each, newest first, in 3 pages or more", len(got), pages, len(want))
		}
	})
	testEngineStores(t, func(t *testing.T, newStore func(testing.TB) tasks.Store) {
		const maxPage = 10 << 10
		a := newAPI(t, newStore(t), apiOpts{
			cfg:     &tasks.Config{MaxDataBytes: 16 << 10},
			handler: &tasks.HandlerConfig{MaxPageBytes: maxPage},
		})
		// Sizes from a few bytes to past the bound, in no order.
		data := make([]string, 40)
		for i := range data {
			data[i] = `{"i":` + fmt.Sprint(i) + `,"s":"` + strings.Repeat("x", (i*7919)%(13<<10)) + `"}`
		}
		want := a.createData(t, data)
		for _, query := range []string{"limit=1000", "limit=7", "limit=1", "status=scheduled&event_type=x"} {
			got, pages := a.listAll(t, query, maxPage)
			if !slices.Equal(got, want) || pages < 10 {
				t.Errorf("?%s: listed %d tasks in %d pages, want the %d tasks once each, newest first, in 10 pages or more", query, len(got), pages, len(want))
			}
		}
	})
}

// flakyListStore fails List from its failFrom-th call on, counting from 1,
// while failFrom is positive.
type flakyListStore struct {
	tasks.Store
	calls, failFrom atomic.Int32
}

func (s *flakyListStore) List(ctx context.Context, p tasks.ListParams) ([]*tasks.Task, string, error) {
	if n := s.calls.Add(1); s.failFrom.Load() > 0 && n >= s.failFrom.Load() {
		return nil, "", errSQL
	}
	return s.Store.List(ctx, p)
}

// TestHandler_ListStoreFailsMidPage: a store error while a page is sent
// never gives half a JSON document: before anything was sent, the answer
// is a 503 problem; after, the page ends early with a next_cursor from
// which the client reads the rest, every task once.
func TestHandler_ListStoreFailsMidPage(t *testing.T) {
	t.Parallel()
	store := &flakyListStore{Store: tasks.NewMemoryStore()}
	a := newAPI(t, store, apiOpts{noStart: true})
	data := make([]string, 12)
	for i := range data {
		data[i] = fmt.Sprint(i)
	}
	want := a.createData(t, data)
	cut := 0 // pages that the failure ended early
	for failFrom := int32(1); failFrom <= 4; failFrom++ {
		store.calls.Store(0)
		store.failFrom.Store(failFrom)
		r := a.do("GET", "/apps/app_1/tasks?limit=1000", "")
		store.failFrom.Store(0)
		if r.status != http.StatusOK {
			r.problem(t, http.StatusServiceUnavailable, "", "unavailable")
			continue
		}
		var p rawPage
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatalf("failing from List call %d: 200 with %q: %v", failFrom, r.body, err)
		}
		got := p.ids(t)
		if p.NextCursor != nil {
			cut++
			rest, _ := a.listAll(t, "limit=1000&cursor="+*p.NextCursor, tasks.DefaultMaxPageBytes)
			got = append(got, rest...)
		}
		if !slices.Equal(got, want) {
			t.Errorf("failing from List call %d: listed %v, want %v", failFrom, got, want)
		}
	}
	if cut == 0 {
		t.Error("no page was ended early by the store's failure")
	}
	if log := a.log.String(); !strings.Contains(log, "FROM taskwheel_tasks") {
		t.Errorf("log %q does not hold the store's error", log)
	}
}
