package dashboard

import (
	"container/list"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/taskwheel/tasks"
)

// The chart's cache: a task page counts the tasks that ended in each minute
// of the last hour, and a minute's count stops changing soon after it
// ends, so the dashboard keeps the counts of the minutes that have settled
// and asks the store only for those that have not. A view then reads the
// tasks that ended in the last two minutes, not in the last hour: its cost
// follows the finish rate over two minutes, not sixty.
const (
	// chartSettle is how long after a minute ends its count is taken as
	// final. A task's CompletedAt is the store's clock when the write that
	// ended it began (on PostgreSQL, now() is its transaction's start), and
	// the engine bounds each such write to 10 seconds (its store calls'
	// timeout; the API's and the dashboard's are 5), so a task that ended
	// in a minute is visible within 10 seconds of the minute's end. A
	// minute leaves 50 seconds more for the dashboard's clock to run ahead
	// of the database's: the chart's minutes are read from the
	// dashboard's clock, its tasks' times from the store's. It also keeps
	// a view's query to two minutes: the current one and the one before.
	chartSettle = time.Minute
	// chartCacheApps bounds the apps whose settled minutes a dashboard
	// keeps, at most chartMinutes buckets each (about 3 KB); past it, the
	// app viewed least recently is dropped.
	chartCacheApps = 1000
)

// chartCache keeps, per app, the buckets of the chart's settled minutes. It
// is safe for concurrent use; its lock is never held across a store call,
// so that views of one app run their (short) queries side by side and the
// one that learned the most is kept.
type chartCache struct {
	mu   sync.Mutex
	max  int                      // apps kept
	apps map[string]*list.Element // of lru, each a *chartEntry
	lru  list.List                // most recently viewed first
}

// chartEntry is what the cache knows of one app: the buckets of the
// settled minutes [from, to), those that hold a task, by Start. Its
// buckets slice is never changed once the entry is made: views share it.
type chartEntry struct {
	app      string
	from, to time.Time
	buckets  []tasks.Bucket
}

func newChartCache(max int) *chartCache {
	return &chartCache{max: max, apps: make(map[string]*list.Element)}
}

// histogramFunc is Engine.TaskHistogram with one-minute buckets.
type histogramFunc func(ctx context.Context, app string, since time.Time) ([]tasks.Bucket, error)

// histogram returns the buckets of app's tasks that ended from since on,
// one a minute, as query(ctx, app, since) would, at the time now: the
// cached ones of settled minutes, and query's from the first minute the
// cache does not hold. since is a minute's start. It then keeps the
// minutes from since on that have settled by now.
func (c *chartCache) histogram(ctx context.Context, app string, since, now time.Time, query histogramFunc) ([]tasks.Bucket, error) {
	settled := now.Add(-chartSettle).Truncate(time.Minute) // the minutes before it have settled
	from := since
	var cached []tasks.Bucket
	if e := c.get(app); e != nil && !e.from.After(since) && !e.to.Before(since) {
		from = e.to
		i, _ := slices.BinarySearchFunc(e.buckets, since, func(b tasks.Bucket, t time.Time) int { return b.Start.Compare(t) })
		cached = e.buckets[i:]
	}
	fresh, err := query(ctx, app, from)
	if err != nil {
		return nil, err
	}
	out := append(slices.Clip(cached), fresh...) // cached ones all start before from
	to := from
	if settled.After(to) {
		to = settled
	}
	n, _ := slices.BinarySearchFunc(out, to, func(b tasks.Bucket, t time.Time) int { return b.Start.Compare(t) })
	c.put(&chartEntry{app: app, from: since, to: to, buckets: slices.Clip(out[:n])})
	return out, nil
}

// get returns the entry of app, or nil, and marks app as viewed.
func (c *chartCache) get(app string) *chartEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.apps[app]
	if el == nil {
		return nil
	}
	c.lru.MoveToFront(el)
	return el.Value.(*chartEntry)
}

// put keeps e unless the cache holds an entry of its app that reaches
// further (a concurrent view's): of two correct entries, the one with more
// settled minutes saves more. It drops the least recently viewed app when
// there are too many.
func (c *chartCache) put(e *chartEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.apps[e.app]; el != nil {
		if old := el.Value.(*chartEntry); !e.to.Before(old.to) {
			el.Value = e
		}
		c.lru.MoveToFront(el)
		return
	}
	c.apps[e.app] = c.lru.PushFront(e)
	for c.lru.Len() > c.max {
		last := c.lru.Back()
		c.lru.Remove(last)
		delete(c.apps, last.Value.(*chartEntry).app)
	}
}

// len returns how many apps the cache holds.
func (c *chartCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
