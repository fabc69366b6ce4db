package bench

// W9: what a long history costs. FillHistory puts millions of finished
// tasks in a store's tables as a year of service would leave them under
// retention, and Reads measures the reads that must not grow with them:
// the app's counts, the first page of its task list, and the dashboard.
// The workloads that write (W3, W5, W7) are the ones above, run on the
// filled store.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/dashboard"
)

// The history that FillHistory makes. Its ages keep within the default
// retention of each state (tasks.DefaultRetainCompleted, RetainFailed,
// RetainCanceled), so that an engine with the default Config deletes none
// of it while it is measured: it is what a store under the default
// retention holds in its steady state.
//
// The oldest fiftieth of the rows is the failures of the past days: failed
// tasks from historyOld to historyRecent ago, and canceled ones, which
// are kept a shorter time, from six days ago on. The rest are the last
// historyRecent hours of a busy service: completed tasks, one in a
// thousand failed and one in a thousand canceled. So the first page of an
// app's failed tasks is a few recent ones and then old ones behind
// millions of completed tasks, the case that an app's list index alone
// serves by walking its whole history. Tasks are created in ID order (the
// IDs are UUIDv7-shaped, from an earlier time than any new task's), so
// that the one statement appends to every index instead of scattering
// over it; created_at is spread evenly over each span.
//
// Seven rows in ten are the workloads' app, "bench"; the others are
// three smaller apps, app_1 to app_3, a hundred rows at a time.
const (
	historyEvent  = "bench.history"
	historyOld    = 13 * 24 * time.Hour // the oldest failed task's age
	historyCancel = 6 * 24 * time.Hour  // the oldest canceled task's age
	historyRecent = 23 * time.Hour      // the oldest completed task's age
)

// fillHistory queries take the number of rows, the number of old rows,
// and the ages and spans in microseconds (historyOld, historyOld -
// historyRecent, historyRecent - a minute), and, on SQLite, the clock.
// Old row i of k (1 ≤ i ≤ k) is created at now - old + i*span/k; recent
// row i at now - recent + (i-k)*span/(n-k). The old rows that are
// canceled (odd ones created within historyCancel) are those with
// 12*i > 7*k: historyOld - 7/12 of (historyOld - historyRecent) is just
// under six days.
const (
	fillHistorySQLite = `WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?1),
gen AS (
	SELECT i,
		CASE WHEN i <= ?2 THEN ?6 - ?3 + i * ?4 / ?2 ELSE ?6 - ?5 + (i - ?2) * (?5 - 60000000) / (?1 - ?2) END AS created,
		CASE
			WHEN i <= ?2 AND i % 2 = 1 AND 12 * i > 7 * ?2 THEN 'canceled'
			WHEN i <= ?2 THEN 'failed'
			WHEN i % 1000 = 0 THEN 'failed'
			WHEN i % 1000 = 1 THEN 'canceled'
			ELSE 'completed'
		END AS state
	FROM seq)
INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data, run_at, attempts, max_attempts, last_error,
	created_at, updated_at, completed_at)
SELECT printf('00000000-0000-7000-8000-%012x', i),
	CASE WHEN i / 100 % 10 < 7 THEN 'bench' ELSE 'app_' || (i / 100 % 10 - 6) END,
	'` + historyEvent + `', state, CAST('{"n":' || i || '}' AS BLOB), created,
	CASE state WHEN 'completed' THEN 1 WHEN 'failed' THEN 3 ELSE 0 END, 3,
	CASE state WHEN 'failed' THEN 'HTTP 500: Internal Server Error' ELSE '' END,
	created,
	created + CASE state WHEN 'completed' THEN 2000000 WHEN 'failed' THEN 60000000 ELSE 10000000 END,
	created + CASE state WHEN 'completed' THEN 2000000 WHEN 'failed' THEN 60000000 ELSE 10000000 END
FROM gen`
	fillHistoryPostgres = `INSERT INTO taskwheel_tasks (id, app_id, event_type, state, data, run_at, attempts, max_attempts, last_error,
	created_at, updated_at, completed_at)
SELECT '00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'),
	CASE WHEN i / 100 % 10 < 7 THEN 'bench' ELSE 'app_' || (i / 100 % 10 - 6) END,
	'` + historyEvent + `', state, convert_to('{"n":' || i || '}', 'UTF8'), created,
	CASE state WHEN 'completed' THEN 1 WHEN 'failed' THEN 3 ELSE 0 END, 3,
	CASE state WHEN 'failed' THEN 'HTTP 500: Internal Server Error' ELSE '' END,
	created,
	created + CASE state WHEN 'completed' THEN interval '2 seconds' WHEN 'failed' THEN interval '60 seconds' ELSE interval '10 seconds' END,
	created + CASE state WHEN 'completed' THEN interval '2 seconds' WHEN 'failed' THEN interval '60 seconds' ELSE interval '10 seconds' END
FROM (
	SELECT i,
		now() - (CASE WHEN i <= $2::bigint THEN $3::bigint - i * $4::bigint / $2::bigint ELSE $5::bigint - (i - $2::bigint) * ($5::bigint - 60000000) / ($1::bigint - $2::bigint) END) * interval '1 microsecond' AS created,
		CASE
			WHEN i <= $2::bigint AND i % 2 = 1 AND 12 * i > 7 * $2::bigint THEN 'canceled'
			WHEN i <= $2::bigint THEN 'failed'
			WHEN i % 1000 = 0 THEN 'failed'
			WHEN i % 1000 = 1 THEN 'canceled'
			ELSE 'completed'
		END AS state
	FROM generate_series(1::bigint, $1::bigint) AS i
) AS gen`

	// Each failed task of the history gets its three attempts, each a
	// webhook answered 500, in a second INSERT … SELECT.
	fillAttemptsSQLite = `INSERT INTO taskwheel_attempts (task_id, number, started_at, duration, status_code, response, error)
SELECT t.id, n.n, t.created_at + (n.n - 1) * 20000000, 150000, 500, 'Internal Server Error', 'HTTP 500: Internal Server Error'
FROM taskwheel_tasks AS t, (SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3) AS n
WHERE t.event_type = '` + historyEvent + `' AND t.state = 'failed'
ORDER BY t.id, n.n`
	fillAttemptsPostgres = `INSERT INTO taskwheel_attempts (task_id, number, started_at, duration, status_code, response, error)
SELECT t.id, n, t.created_at + (n - 1) * interval '20 seconds', 150000, 500, 'Internal Server Error', 'HTTP 500: Internal Server Error'
FROM taskwheel_tasks AS t, generate_series(1, 3) AS n
WHERE t.event_type = '` + historyEvent + `' AND t.state = 'failed'
ORDER BY t.id, n`
)

// HistoryResult is the outcome of [FillHistory].
type HistoryResult struct {
	// Tasks counts the tasks inserted, over the time of the INSERT.
	Tasks Rate
	// Attempts is the number of attempts inserted for the failed tasks.
	Attempts int64
	// Settle is the time the database took to settle after the inserts,
	// as a database that has held its history for a while has: on
	// PostgreSQL, VACUUM ANALYZE, as autovacuum would do in the
	// background, and a CHECKPOINT (which needs a superuser or the
	// pg_checkpoint role), so that the workloads after it do not pay for
	// writing out gigabytes of fresh pages; on SQLite, a checkpoint of
	// the write-ahead log.
	Settle time.Duration
}

// FillHistory inserts n finished tasks (see the constants above for their
// shape) into the tables of db, a migrated store's database of dialect d,
// with one INSERT … SELECT that generates them in the database, then the
// attempts of the failed ones with a second, and settles the database.
// It does not go through a store or an engine: it makes a history fast,
// not the way tasks are made.
func FillHistory(ctx context.Context, db *sql.DB, d tasks.Dialect, n int) (HistoryResult, error) {
	if n < 2 {
		return HistoryResult{}, fmt.Errorf("want at least 2 tasks of history, have %d", n)
	}
	old := max(n/50, 1)
	args := []any{n, old, historyOld.Microseconds(), (historyOld - historyRecent).Microseconds(), historyRecent.Microseconds()}
	fill, attempts := fillHistoryPostgres, fillAttemptsPostgres
	if d == tasks.SQLite {
		fill, attempts = fillHistorySQLite, fillAttemptsSQLite
		args = append(args, time.Now().UnixMicro())
	}
	var r HistoryResult
	start := time.Now()
	if _, err := db.ExecContext(ctx, fill, args...); err != nil {
		return r, fmt.Errorf("insert %d tasks: %w", n, err)
	}
	r.Tasks = Rate{N: n, Elapsed: time.Since(start)}
	res, err := db.ExecContext(ctx, attempts)
	if err != nil {
		return r, fmt.Errorf("insert attempts: %w", err)
	}
	if r.Attempts, err = res.RowsAffected(); err != nil {
		return r, fmt.Errorf("insert attempts: %w", err)
	}
	start = time.Now()
	if d == tasks.SQLite {
		err = checkpointAll(ctx, db)
	} else {
		for _, q := range []string{"VACUUM ANALYZE taskwheel_tasks", "VACUUM ANALYZE taskwheel_attempts", "CHECKPOINT"} {
			if _, err = db.ExecContext(ctx, q); err != nil {
				err = fmt.Errorf("%s: %w", q, err)
				break
			}
		}
	}
	r.Settle = time.Since(start)
	return r, err
}

// checkpointAll copies SQLite's write-ahead log, gigabytes after a
// history, into the database and empties it, so that the reads and
// workloads after it neither search a huge log nor compete with the
// store's checkpointer copying it. A checkpoint already under way (the
// store's own, every few seconds) makes it busy: it tries again.
func checkpointAll(ctx context.Context, db *sql.DB) error {
	for {
		var busy, frames, copied int
		if err := db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &frames, &copied); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		if busy == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("checkpoint: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ReadsResult is the outcome of [Reads]: the latency of each read.
type ReadsResult struct {
	// Counts is Engine.CountTasks of the app, with the dashboard's limit.
	Counts Latency
	// List and ListFailed are the first page of the app's tasks,
	// Engine.List with the default limit: all of them, and the failed
	// ones.
	List, ListFailed Latency
	// Home and Tasks are GETs of the dashboard's home page and of the
	// app's task page (its counts, chart and first page), by a logged-in
	// browser.
	Home, Tasks Latency
	// TasksCold is the first GET of the task page, which Tasks does not
	// time: the dashboard has no minute of the chart cached yet.
	TasksCold time.Duration
}

// Reads measures W9's reads of the app "bench" on store: calls of each, one
// after the other, after one call of each not timed. The engine is not
// started. The dashboard is served by a loopback http.Server and logged
// into with a key that grants every app, as a person would use it.
func Reads(ctx context.Context, store tasks.Store, calls int) (_ ReadsResult, err error) {
	eng, err := newEngine(store, tasks.Config{}, "", nil)
	if err != nil {
		return ReadsResult{}, err
	}
	key := "tw_" + rand.Text()
	srv, err := serve(http.StripPrefix("/ui", dashboard.New(eng, &dashboard.Config{Keys: map[string][]string{key: {"*"}}})))
	if err != nil {
		return ReadsResult{}, fmt.Errorf("start server: %w", err)
	}
	defer func() { err = errors.Join(err, srv.close()) }()
	c := newClient()
	defer c.CloseIdleConnections()
	c.Jar, _ = cookiejar.New(nil)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if err := login(ctx, c, srv.url+"/ui/login", key); err != nil {
		return ReadsResult{}, err
	}

	var r ReadsResult
	for _, m := range []struct {
		into *Latency
		read func(ctx context.Context) error
		cold *time.Duration // the first call's time, if wanted
	}{
		{&r.Counts, func(ctx context.Context) error {
			_, err := eng.CountTasks(ctx, appID, dashboard.DefaultCountLimit)
			return err
		}, nil},
		{&r.List, func(ctx context.Context) error {
			_, _, err := eng.List(ctx, tasks.ListParams{AppID: appID})
			return err
		}, nil},
		{&r.ListFailed, func(ctx context.Context) error {
			_, _, err := eng.List(ctx, tasks.ListParams{AppID: appID, States: []tasks.State{tasks.StateFailed}})
			return err
		}, nil},
		{&r.Home, func(ctx context.Context) error { return get(ctx, c, srv.url+"/ui/") }, nil},
		{&r.Tasks, func(ctx context.Context) error { return get(ctx, c, srv.url+"/ui/apps/"+appID+"/tasks") }, &r.TasksCold},
	} {
		var first time.Duration
		if *m.into, first, err = timeCalls(ctx, calls, m.read); err != nil {
			return r, err
		}
		if m.cold != nil {
			*m.cold = first
		}
	}
	return r, nil
}

// timeCalls calls f once, then calls more times, timing each; it returns
// their latency and the time of the first call apart.
func timeCalls(ctx context.Context, calls int, f func(ctx context.Context) error) (Latency, time.Duration, error) {
	start := time.Now()
	if err := f(ctx); err != nil {
		return Latency{}, 0, err
	}
	first := time.Since(start)
	ds := make([]time.Duration, 0, calls)
	for range calls {
		start := time.Now()
		if err := f(ctx); err != nil {
			return Latency{}, first, err
		}
		ds = append(ds, time.Since(start))
	}
	return latency(ds), first, nil
}

// login logs c into the dashboard at url with key: its session cookie
// goes into c's jar.
func login(ctx context.Context, c *http.Client, loginURL, key string) error {
	body := url.Values{"key": {key}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, loginURL, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("log into the dashboard: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusSeeOther {
		return fmt.Errorf("log into the dashboard: got %s, want 303 See Other", resp.Status)
	}
	return nil
}

// get GETs url with c and reads the page; anything but 200 OK fails.
func get(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: got %s, want 200 OK", url, resp.Status)
	}
	return nil
}
