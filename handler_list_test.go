package tasks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
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

// enqueueSmall enqueues n tasks of a few bytes of data in app_1 and returns
// their IDs newest first, as a listing orders them.
func (a *api) enqueueSmall(t *testing.T, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		task, err := a.e.Enqueue(t.Context(), tasks.NewTask{AppID: "app_1", EventType: "x",
			Data: json.RawMessage(fmt.Sprint(i)), RunAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		ids[n-1-i] = task.ID
	}
	return ids
}

// TestHandler_ListReadsSmallTasksInChunks: a listing of small tasks reads
// the store 100 tasks at a time, however large a task may be: the bound on
// what listings hold costs them nothing.
func TestHandler_ListReadsSmallTasksInChunks(t *testing.T) {
	t.Parallel()
	store := &flakyListStore{Store: tasks.NewMemoryStore()}
	a := newAPI(t, store, apiOpts{noStart: true})
	want := a.enqueueSmall(t, 250)
	for _, tc := range []struct {
		query string
		reads int32
	}{
		{"limit=1000", 3},
		{"limit=50", 1},
	} {
		store.calls.Store(0)
		got, pages := a.listAll(t, tc.query, tasks.DefaultMaxPageBytes)
		if !slices.Equal(got, want) {
			t.Errorf("?%s: listed %d tasks, want the %d tasks once each, newest first", tc.query, len(got), len(want))
		}
		if reads := store.calls.Load(); reads > tc.reads*int32(pages) {
			t.Errorf("?%s: %d pages read the store %d times, want at most %d a page", tc.query, pages, reads, tc.reads)
		}
	}
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
	want := a.enqueueSmall(t, 250) // read 100 at a time
	cut := 0                       // pages that the failure ended early
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

// walk follows the pages of the app_1 listing of a.srv with limit=1000, as
// a client of its own would, and returns the IDs listed. Unlike listAll it
// may run on any goroutine.
func (a *api) walk(ctx context.Context) ([]string, error) {
	var ids []string
	cursor := ""
	for pages := 1; ; pages++ {
		req, err := http.NewRequestWithContext(ctx, "GET", a.srv.URL+prefix+"/apps/app_1/tasks?limit=1000"+cursor, nil)
		if err != nil {
			return ids, err
		}
		req.Header.Set("Authorization", "Bearer "+keyApp1)
		resp, err := a.srv.Client().Do(req)
		if err != nil {
			return ids, err
		}
		var p struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
			NextCursor *string `json:"next_cursor"`
		}
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return ids, fmt.Errorf("page %d: %d, %v", pages, resp.StatusCode, err)
		}
		for _, t := range p.Data {
			ids = append(ids, t.ID)
		}
		if p.NextCursor == nil {
			return ids, nil
		}
		if len(p.Data) == 0 || pages > 1000 {
			return ids, fmt.Errorf("page %d: %d tasks and a next cursor", pages, len(p.Data))
		}
		cursor = "&cursor=" + *p.NextCursor
	}
}

// gatedListStore holds List calls until open is closed, and counts the
// bytes of data and last errors that the List calls in progress may
// return: MaxBytes, or one task of maxTask bytes if that is more.
type gatedListStore struct {
	tasks.Store
	maxTask int64
	open    chan struct{}
	entered chan struct{} // receives a value as each List call starts

	mu          sync.Mutex
	bytes, peak int64 // that the List calls in progress may return
	unbounded   int   // List calls without MaxBytes
}

func (s *gatedListStore) List(ctx context.Context, p tasks.ListParams) ([]*tasks.Task, string, error) {
	bytes := max(p.MaxBytes, s.maxTask)
	s.mu.Lock()
	if p.MaxBytes == 0 {
		s.unbounded++
	}
	s.bytes += bytes
	s.peak = max(s.peak, s.bytes)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.bytes -= bytes
		s.mu.Unlock()
	}()
	s.entered <- struct{}{}
	select {
	case <-s.open:
	case <-ctx.Done(): // the client went away: the tasks come all the same
	}
	return s.Store.List(context.WithoutCancel(ctx), p)
}

// TestHandler_ListBoundsMemory: concurrent listings of a handler together
// read no more of tasks' data and last errors at once than
// HandlerConfig.MaxListBytes (by default, 4 × MaxPageBytes): the others
// wait their turn, and every client following next_cursor reads every task
// exactly once, in order.
func TestHandler_ListBoundsMemory(t *testing.T) {
	t.Parallel()
	const (
		maxData = 16 << 10
		maxPage = 64 << 10
		maxList = 4 * maxPage // the default
		walkers = 8
	)
	store := &gatedListStore{Store: tasks.NewMemoryStore(), maxTask: maxData, open: make(chan struct{}), entered: make(chan struct{}, 1000)}
	a := newAPI(t, store, apiOpts{
		cfg:     &tasks.Config{MaxDataBytes: maxData},
		handler: &tasks.HandlerConfig{MaxPageBytes: maxPage},
		noStart: true,
	})
	data := make([]string, 20)
	for i := range data {
		data[i] = `"` + strings.Repeat(string(rune('a'+i)), maxData-2-i) + `"`
	}
	want := a.createData(t, data)

	got := make([][]string, walkers)
	errs := make([]error, walkers)
	var wg sync.WaitGroup
	for i := range walkers {
		wg.Go(func() { got[i], errs[i] = a.walk(t.Context()) })
	}
	// Let in the List calls that the budget allows, all of them before
	// the fix: the first call of each walker, or until none comes for a
	// while.
	for n := 0; n < walkers; n++ {
		select {
		case <-store.entered:
			continue
		case <-time.After(300 * time.Millisecond):
		}
		break
	}
	close(store.open)
	go func() { // ends when the walkers end
		for range store.entered {
		}
	}()
	wg.Wait()
	close(store.entered)

	if store.unbounded > 0 || store.peak > maxList {
		t.Errorf("List calls at once may return up to %d bytes of tasks (%d calls with no MaxBytes), want at most MaxListBytes, %d", store.peak, store.unbounded, maxList)
	}
	for i := range walkers {
		if errs[i] != nil || !slices.Equal(got[i], want) {
			t.Errorf("walker %d: listed %d tasks (%v), want the %d tasks once each, newest first", i, len(got[i]), errs[i], len(want))
		}
	}
}

// TestHandler_ListClientGoneReleases: a client that goes away in the
// middle of a page leaves the listings' budget as it found it: with room
// for one read only, a listing after it reads every page.
func TestHandler_ListClientGoneReleases(t *testing.T) {
	t.Parallel()
	const maxData = 16 << 10
	store := &gatedListStore{Store: tasks.NewMemoryStore(), maxTask: maxData, open: make(chan struct{}), entered: make(chan struct{}, 1000)}
	a := newAPI(t, store, apiOpts{
		cfg:     &tasks.Config{MaxDataBytes: maxData},
		handler: &tasks.HandlerConfig{MaxPageBytes: 64 << 10, MaxListBytes: 1}, // one read of one task at a time
		noStart: true,
	})
	data := make([]string, 6)
	for i := range data {
		data[i] = `"` + strings.Repeat("x", maxData-2) + `"`
	}
	want := a.createData(t, data)

	// The client reads the page's first task, then goes away while the
	// handler reads its next chunk.
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", a.srv.URL+prefix+"/apps/app_1/tasks?limit=1000", nil)
	req.Header.Set("Authorization", "Bearer "+keyApp1)
	done := make(chan error, 1)
	go func() { // ends when ctx is cancelled
		resp, err := a.srv.Client().Do(req)
		if err == nil {
			_, err = io.ReadFull(resp.Body, make([]byte, maxData))
			defer resp.Body.Close()
		}
		done <- err
		<-ctx.Done() // the client goes away, and not before
	}()
	next := func() {
		select {
		case <-store.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the listing did not read the store")
		}
	}
	next()
	store.open <- struct{}{} // the first chunk goes through
	next()                   // the second waits for the client to go
	if err := <-done; err != nil {
		t.Fatalf("reading the page's first task: %v", err)
	}
	cancel()

	close(store.open)
	go func() { // ends when the walk ends
		for range store.entered {
		}
	}()
	got, err := a.walk(t.Context())
	close(store.entered)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("after a client went away, listed %d tasks (%v), want the %d tasks once each, newest first", len(got), err, len(want))
	}
}
