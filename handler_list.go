package tasks

import (
	"log/slog"
	"net/http"
	"strconv"
)

// A task listing is sent as it is read, so that a page of large tasks is
// never in memory whole: the handler reads the store a chunk of tasks at a
// time, cursor by cursor, and writes each task to the client as soon as it
// is encoded. A page ends at the limit's tasks or at HandlerConfig's
// MaxPageBytes of task JSON, whichever comes first.
//
// The first chunk is one task, since nothing is known of the tasks' size
// yet; each later chunk is as many tasks as the rest of the page's bytes
// holds at the size of the largest task so far, from one to maxListChunk.
// A listing of 1 MiB tasks thus holds a few tasks at a time, at most a
// page's bytes and the one more that Store.List reads to know whether
// there are more, and a listing of small tasks reads the store 100 at a
// time.
const maxListChunk = 100

// handleListTasks lists an app's tasks, newest first, a page at a time:
// {"data":[task, ...],"next_cursor":cursor or null}.
//
// Its status is decided once the first chunk is read: a store error then is
// the answer, a 503 problem. A store error on a later chunk, after the 200
// and part of the page went out, ends the page early, still valid JSON, with
// a next_cursor after its last task, and goes to the log: the client's next
// request carries on from there (and gets the 503 if the store still
// fails). No answer ends in half a JSON document, and no task is skipped.
func (h *handler) handleListTasks(w http.ResponseWriter, r *http.Request, app string) error {
	p, err := listParams(r)
	if err != nil {
		return err
	}
	p.AppID = app
	page := listPage{w: w, maxBytes: h.maxPage}
	limit := p.Limit
	p.Limit = 1
	largest := 1 // bytes of the largest encoded task so far
	for {
		ctx, cancel := h.storeCtx(r)
		ts, next, err := h.e.List(ctx, p)
		cancel()
		if err != nil && page.n == 0 {
			return err
		}
		if err != nil {
			level := slog.LevelError
			if r.Context().Err() != nil {
				level = slog.LevelInfo // the client went away
			}
			h.log.Log(r.Context(), level, "tasks: API task listing ended its page early: the store failed",
				"method", r.Method, "path", r.URL.Path, "tasks_sent", page.n, "err", err)
			return page.end(encodeCursor(page.last))
		}
		for _, t := range ts {
			b := taskJSON(t)
			if !page.fits(b) {
				return page.end(encodeCursor(page.last))
			}
			if err := page.add(t, b); err != nil {
				return nil // the client went away; nothing more can be answered
			}
			largest = max(largest, len(b))
		}
		if next == "" || page.n == limit {
			return page.end(next)
		}
		p.Cursor = next
		p.Limit = min(limit-page.n, maxListChunk, max(1, (page.maxBytes-page.bytes)/largest))
	}
}

// listPage writes a page of a task listing as its tasks come. It writes the
// status and the page's head with its first task, or at its end if it has
// none.
type listPage struct {
	w        http.ResponseWriter
	maxBytes int   // of task JSON
	n        int   // tasks written
	bytes    int   // task JSON written
	last     *Task // the last task written
}

// fits reports whether the encoded task b fits in the page: the page's
// first task always does.
func (p *listPage) fits(b encoded) bool {
	return p.n == 0 || p.bytes+len(b) <= p.maxBytes
}

// add writes the task t, encoded as b.
func (p *listPage) add(t *Task, b encoded) error {
	sep := []byte{','}
	if p.n == 0 {
		p.start()
		sep = []byte(`{"data":[`)
	}
	if _, err := p.w.Write(sep); err != nil {
		return err
	}
	if _, err := p.w.Write(b); err != nil {
		return err
	}
	p.n, p.bytes, p.last = p.n+1, p.bytes+len(b), t
	return nil
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
