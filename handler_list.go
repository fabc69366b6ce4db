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
// the sizes of the tasks they happen to meet: before each read, a listing
// reserves, in a semaphore of HandlerConfig.MaxListBytes, room for every
// task that the read may return at the largest size a task may have
// (Config.MaxDataBytes plus maxTaskHead), and for the one more task that
// Store.List reads to learn whether there are more. Once the chunk is read
// it gives back what the tasks do not use, and gives back each task's share
// as soon as the task is sent. A chunk reserves at most a page's bytes, so
// that several listings go on at once: with the defaults, 3 tasks of up to
// 1 MiB, within 16 MiB for all listings; a listing of small tasks reads 100
// at a time only if Config.MaxDataBytes allows.
//
// (The task that Store.List reads ahead is the one copy a listing could
// spare, but only the store could spare it: the contract returns no more
// than the tasks and a cursor. It is reserved for, like the others.)

const (
	// maxListChunk bounds the tasks of one read of the store.
	maxListChunk = 100
	// maxTaskHead is what a listing reserves for a task's JSON besides its
	// data: IDs, times, last error.
	maxTaskHead = 16 << 10
	// taskFields is what a task read holds besides its data and last error,
	// roughly.
	taskFields = 1 << 10
)

// errListsBusy answers a listing that waited for its reservation as long as
// it would wait for the store.
var errListsBusy = apiErrorf(http.StatusServiceUnavailable, "", "too many task listings at once; try again later")

// listBudget is the room that the task listings of a handler share.
type listBudget struct {
	sem      *semaphore.Weighted
	taskMax  int64 // reserved for each task a read may return
	chunkMax int   // tasks of a read, before the store's one more
}

// newListBudget returns the budget of HandlerConfig.MaxListBytes maxList (0
// for the default), for pages of maxPage bytes and tasks of at most maxData
// bytes of data.
func newListBudget(maxList int64, maxPage, maxData int) *listBudget {
	taskMax := int64(maxData) + maxTaskHead
	size := max(cmp.Or(maxList, 4*int64(maxPage)), 2*taskMax) // a read of one task, and the one more
	tasks := min(int64(maxPage), size) / taskMax              // in a chunk, the one more included
	return &listBudget{
		sem:      semaphore.NewWeighted(size),
		taskMax:  taskMax,
		chunkMax: int(min(max(tasks-1, 1), maxListChunk)),
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
		p.Limit = min(limit-page.n, h.lists.chunkMax)
		c, next, err := h.readChunk(r, p)
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

// readChunk reserves room for the tasks that Store.List may read for p
// (p.Limit, and one more), waiting no longer than for the store, and reads
// them.
func (h *handler) readChunk(r *http.Request, p ListParams) (*chunk, string, error) {
	held := int64(p.Limit+1) * h.lists.taskMax
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
	c := &chunk{budget: h.lists, tasks: ts, shares: make([]int64, len(ts))}
	for i, t := range ts {
		c.shares[i] = min(int64(len(t.Data)+len(t.LastError)+taskFields), h.lists.taskMax)
		held -= c.shares[i]
	}
	h.lists.sem.Release(held) // the room that the tasks do not use
	return c, next, nil
}

// chunk is a read of a listing: tasks, each holding its share of the
// listings' budget until it is sent or the chunk is released.
type chunk struct {
	budget *listBudget
	tasks  []*Task // nil once sent
	shares []int64
}

// send adds the chunk's tasks to page until the page is full, which it
// reports, giving back each task's share once it is written.
func (c *chunk) send(page *listPage) (full bool, err error) {
	for i, t := range c.tasks {
		added, err := page.add(t)
		if !added || err != nil {
			return !added, err
		}
		c.tasks[i] = nil
		c.budget.sem.Release(c.shares[i])
	}
	return false, nil
}

// release gives back the shares of the tasks not sent.
func (c *chunk) release() {
	for i, t := range c.tasks {
		if t != nil {
			c.tasks[i] = nil
			c.budget.sem.Release(c.shares[i])
		}
	}
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
		Data *struct{} `json:"data,omitempty"` // hides task.Data
	}{task: (*task)(t)})
	if err != nil { // a Task always encodes: its times are years 1 to 9999
		panic(err)
	}
	return head
}
