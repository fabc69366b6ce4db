package tasks

import (
	"cmp"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"

	"golang.org/x/sync/semaphore"
)

// A task listing is sent as it is read, so that a page of large tasks is
// never in memory whole: the handler reads the store a chunk of tasks at a
// time, cursor by cursor, and writes each task to the client as soon as it
// is encoded, its data straight from the task, uncopied. A page ends at the
// limit's tasks or at HandlerConfig's MaxPageBytes of task JSON, whichever
// comes first.
//
// What the listings of a handler hold at once is bounded by design, not by
// the sizes of the tasks they happen to meet. Before each read, a listing
// reserves room in a semaphore of HandlerConfig.MaxListBytes: as much as the
// rest of its page may take, at most a quarter of MaxListBytes, so that
// several listings read at once, and at least room for one task at the
// largest a task may be (Config.MaxDataBytes plus maxTaskRest), since
// Store.List always returns one. It then asks the store for up to
// maxListChunk tasks within that room: ListParams.MaxBytes bounds the data
// and last errors of the tasks the store returns, and taskFields a task is
// kept for the rest of each. Once the tasks are read it gives back the room
// they do not use, and each task's room as soon as the task is sent.
//
// A listing of small tasks thus reads them 100 at a time, and a listing of
// 1 MiB tasks a few at a time.

const (
	// maxListChunk bounds the tasks of one read of the store.
	maxListChunk = 100
	// taskFields is what a task read holds besides its data and last
	// error, roughly: IDs, times, numbers.
	taskFields = 1 << 10
	// maxTaskRest is what a listing reserves for a lone task besides its
	// data: its last error and its fields.
	maxTaskRest = 16 << 10
)

// errListsBusy answers a listing that waited for its reservation as long as
// it would wait for the store.
var errListsBusy = apiErrorf(http.StatusServiceUnavailable, "", "too many task listings at once; try again later")

// listBudget is the room that the task listings of a handler share.
type listBudget struct {
	sem     *semaphore.Weighted
	readMin int64 // a read reserves at least this: a task at its largest
	readMax int64 // and at most this, unless readMin is more
}

// newListBudget returns the budget of HandlerConfig.MaxListBytes maxList (0
// for the default), for pages of maxPage bytes and tasks of at most maxData
// bytes of data.
func newListBudget(maxList int64, maxPage, maxData int) *listBudget {
	readMin := int64(maxData) + maxTaskRest
	size := max(cmp.Or(maxList, 4*int64(maxPage)), readMin)
	return &listBudget{
		sem:     semaphore.NewWeighted(size),
		readMin: readMin,
		readMax: max(size/4, readMin),
	}
}

// handleListTasks lists an app's tasks, newest first, a page at a time:
// {"data":[task, ...],"next_cursor":cursor or null}.
//
// Its status is decided once the first chunk is read: a store error then is
// the answer, a 503 problem, and so is a wait for the listings' budget
// (HandlerConfig.MaxListBytes) that lasts as long as the store's timeout. A
// store error or such a wait on a later chunk, after the 200 and part of the
// page went out, ends the page early, still valid JSON, with a next_cursor
// after its last task, and goes to the log: the client's next request
// carries on from there. No answer ends in half a JSON document, and no task
// is skipped.
func (h *handler) handleListTasks(w http.ResponseWriter, r *http.Request, app string) error {
	p, err := listParams(r)
	if err != nil {
		return err
	}
	p.AppID = app
	page := listPage{w: w, maxBytes: h.maxPage}
	limit := p.Limit
	for {
		p.Limit = min(limit-page.n, maxListChunk)
		c, next, err := h.readChunk(r, p, page.maxBytes-page.bytes)
		if err != nil && page.n == 0 {
			return err
		}
		if err != nil {
			level := slog.LevelError
			if r.Context().Err() != nil {
				level = slog.LevelInfo // the client went away
			}
			h.log.Log(r.Context(), level, "tasks: API task listing ended its page early",
				"method", r.Method, "path", r.URL.Path, "tasks_sent", page.n, "err", err)
			return page.end(page.cursor)
		}
		full, err := c.send(&page)
		c.release()
		switch {
		case err != nil:
			return nil // the client went away; nothing more can be answered
		case full:
			return page.end(page.cursor)
		case next == "" || page.n == limit:
			return page.end(next)
		}
		p.Cursor = next
	}
}

// readChunk reads up to p.Limit tasks for the rest of a page, of pageRest
// bytes, within room it reserves from the listings' budget, waiting no
// longer than for the store.
func (h *handler) readChunk(r *http.Request, p ListParams, pageRest int) (*chunk, string, error) {
	held := min(max(int64(pageRest)+int64(p.Limit)*taskFields, h.lists.readMin), h.lists.readMax)
	// The fields of the tasks take at most half the room, their data and
	// last errors the rest; a lone task fits in readMin.
	p.Limit = min(p.Limit, max(1, int(held/(2*taskFields))))
	p.MaxBytes = held - int64(p.Limit)*taskFields
	ctx, cancel := h.storeCtx(r)
	err := h.lists.sem.Acquire(ctx, held)
	cancel()
	if err != nil {
		return nil, "", errListsBusy
	}
	ctx, cancel = h.storeCtx(r)
	ts, next, err := h.e.List(ctx, p)
	cancel()
	if err != nil {
		h.lists.sem.Release(held)
		return nil, "", err
	}
	c := &chunk{budget: h.lists, tasks: ts}
	for _, t := range ts {
		c.held += taskRoom(t)
	}
	if c.held < held {
		h.lists.sem.Release(held - c.held) // the room that the tasks do not use
	} else {
		c.held = held // a lone task larger than its room (a long last error) holds all of it
	}
	return c, next, nil
}

// taskRoom is the room that t holds in the listings' budget.
func taskRoom(t *Task) int64 { return listSize(t) + taskFields }

// chunk is a read of a listing: tasks, holding room in the listings' budget
// until they are sent or the chunk is released.
type chunk struct {
	budget *listBudget
	tasks  []*Task // nil once sent
	held   int64
}

// send adds the chunk's tasks to page until the page is full, which it
// reports, giving back each task's room once it is written.
func (c *chunk) send(page *listPage) (full bool, err error) {
	for i, t := range c.tasks {
		added, err := page.add(t)
		if !added || err != nil {
			return !added, err
		}
		c.tasks[i] = nil
		room := min(taskRoom(t), c.held)
		c.budget.sem.Release(room)
		c.held -= room
	}
	return false, nil
}

// release gives back the room of the tasks not sent.
func (c *chunk) release() {
	c.tasks = nil
	c.budget.sem.Release(c.held)
	c.held = 0
}

// listPage writes a page of a task listing as its tasks come. It writes the
// status and the page's head with its first task, or at its end if it has
// none.
type listPage struct {
	w        http.ResponseWriter
	maxBytes int    // of task JSON
	n        int    // tasks written
	bytes    int    // task JSON written
	cursor   string // after the last task written
}

// add writes the task t as taskJSON encodes it, unless that would take the
// page past its bytes: the page's first task is always added. It writes
// t's data as it is, uncopied.
func (p *listPage) add(t *Task) (added bool, err error) {
	head, data := taskHead(t), t.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	const dataKey = `,"data":`
	n := len(head) - len("}") + len(dataKey) + len(data) + len("}")
	if p.n > 0 && p.bytes+n > p.maxBytes {
		return false, nil
	}
	sep := ","
	if p.n == 0 {
		p.start()
		sep = `{"data":[`
	}
	b := append([]byte(sep), head[:len(head)-1]...)
	b = append(b, dataKey...)
	if _, err := p.w.Write(b); err != nil {
		return true, err
	}
	if _, err := p.w.Write(data); err != nil {
		return true, err
	}
	if _, err := p.w.Write([]byte("}")); err != nil {
		return true, err
	}
	p.n, p.bytes, p.cursor = p.n+1, p.bytes+n, encodeCursor(t)
	return true, nil
}

// end ends the page with next as its next_cursor ("" for null). It returns
// nil, so that a handler can end with it; a write error means the client
// went away, which leaves nothing to answer.
func (p *listPage) end(next string) error {
	tail := `]`
	if p.n == 0 {
		p.start()
		tail = `{"data":[]`
	}
	tail += `,"next_cursor":`
	if next == "" {
		tail += "null"
	} else {
		tail += strconv.Quote(next) // base64url: nothing to escape
	}
	p.w.Write([]byte(tail + "}\n"))
	return nil
}

// start writes the status and headers of the page.
func (p *listPage) start() {
	setHeaders(p.w.Header(), "application/json")
	p.w.WriteHeader(http.StatusOK)
}

// taskHead encodes t as a JSON object without its data (see taskJSON).
func taskHead(t *Task) []byte {
	type task Task // without its Data
	head, err := json.Marshal(struct {
		*task
		Timeout *int64    `json:"timeout,omitempty"` // seconds; absent: the engine's
		Data    *struct{} `json:"data,omitempty"`    // hides task.Data
	}{task: (*task)(t), Timeout: timeoutSeconds(t)})
	if err != nil { // a Task always encodes: its times are years 1 to 9999
		panic(err)
	}
	return head
}
