package dashboard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testkit"
)

// histogramRecorder is a store that records the since of each
// TaskHistogram: how much of the hour a view asked the store for.
type histogramRecorder struct {
	tasks.Store
	mu     sync.Mutex
	sinces []time.Time
}

func (s *histogramRecorder) TaskHistogram(ctx context.Context, appID string, since time.Time, bucket time.Duration) ([]tasks.Bucket, error) {
	s.mu.Lock()
	s.sinces = append(s.sinces, since)
	s.mu.Unlock()
	return s.Store.TaskHistogram(ctx, appID, since, bucket)
}

// take returns the sinces recorded since the last take.
func (s *histogramRecorder) take() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.sinces
	s.sinces = nil
	return out
}

// chartClock is the time of a chart test: the dashboard's clock, and how
// the tasks it ends get the time they ended at.
type chartClock struct {
	now     func() time.Time
	advance func(time.Duration)
	// endedAt makes the tasks ids, which ended just now by the store's
	// clock, end at at instead (the dashboard's clock); nil when the two
	// clocks are one.
	endedAt func(t *testing.T, ids []string, at time.Time)
}

// chartStores runs body on every store: on the memory store in a synctest
// bubble, where the engine, the store and the dashboard share a fake clock;
// on SQLite and PostgreSQL with a fake dashboard clock, from the
// database's time at the start, that runs ahead of it as the test
// advances it, and the tasks' ends moved to it in the database.
func chartStores(t *testing.T, body func(t *testing.T, store tasks.Store, clk chartClock)) {
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			body(t, tasks.NewMemoryStore(), chartClock{now: time.Now, advance: time.Sleep})
		})
	})
	sqlStores := []struct {
		name   string
		open   func(testing.TB, int) []tasks.Store
		update string
		arg    func(time.Time) any
	}{
		{"sqlite", testkit.SQLiteStores, `UPDATE taskwheel_tasks SET completed_at = ? WHERE id = ?`,
			func(t time.Time) any { return t.UnixMicro() }},
		{"postgres", testkit.PostgresStores, `UPDATE taskwheel_tasks SET completed_at = $1 WHERE id = $2`,
			func(t time.Time) any { return t.UTC() }},
	}
	for _, s := range sqlStores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			store := s.open(t, 1)[0]
			db := store.(interface{ DB() *sql.DB }).DB()
			// The dashboard's clock moves only when the test advances it:
			// a clock that also ran with real time crossed into the next
			// minute during a step now and then, between the test's
			// choice of when to view again and the view.
			base := time.Now()
			var offset atomic.Int64
			body(t, store, chartClock{
				now:     func() time.Time { return base.Add(time.Duration(offset.Load())) },
				advance: func(d time.Duration) { offset.Add(int64(d)) },
				endedAt: func(t *testing.T, ids []string, at time.Time) {
					t.Helper()
					for _, id := range ids {
						if _, err := db.Exec(s.update, s.arg(at.Truncate(time.Microsecond)), id); err != nil {
							t.Fatal(err)
						}
					}
				},
			})
		})
	}
}

// chartFuncs are the task funcs of the chart tests: "ok" completes, "bad"
// fails.
var chartFuncs = map[string]tasks.Func{
	"ok":  func(context.Context, *tasks.Task) error { return nil },
	"bad": func(context.Context, *tasks.Task) error { return tasks.Permanent(errors.New("bad")) },
}

// endTasks ends n tasks of app now, completed, failed and canceled in
// turn, and returns their IDs once all have ended.
func endTasks(t *testing.T, e *tasks.Engine, app string, n int) []string {
	t.Helper()
	var ids []string
	var want []tasks.State
	for i := range n {
		switch i % 3 {
		case 0:
			ids = append(ids, testkit.Enqueue(t, e, tasks.NewTask{AppID: app, EventType: "ok"}).ID)
			want = append(want, tasks.StateCompleted)
		case 1:
			ids = append(ids, testkit.Enqueue(t, e, tasks.NewTask{AppID: app, EventType: "bad"}).ID)
			want = append(want, tasks.StateFailed)
		case 2:
			task := testkit.Enqueue(t, e, tasks.NewTask{AppID: app, EventType: "ok", RunAt: time.Now().Add(time.Hour)})
			if _, err := e.Cancel(context.Background(), task.ID); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, task.ID)
			want = append(want, tasks.StateCanceled)
		}
	}
	for i, id := range ids {
		testkit.WaitState(t, e, id, want[i])
	}
	return ids
}

// chartCounts are a chart's bars: completed, failed and canceled a minute.
func chartCounts(c *chart) [][3]int {
	var out [][3]int
	for _, b := range c.Bars {
		out = append(out, [3]int{b.Completed, b.Failed, b.Canceled})
	}
	return out
}

// wantFreshChart checks that the chart of app at now, got, is the one a
// fresh TaskHistogram of store gives.
func wantFreshChart(t *testing.T, store tasks.Store, app string, now time.Time, got *chart) {
	t.Helper()
	since := chartSince(now)
	fresh, err := store.TaskHistogram(context.Background(), app, since, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := newChart(since, fresh)
	if g, w := chartCounts(got), chartCounts(want); fmt.Sprint(g) != fmt.Sprint(w) || !got.From.Equal(want.From) {
		t.Fatalf("the chart of %s at %v: got bars from %v\n%v\nwant, as a fresh TaskHistogram gives, from %v\n%v",
			app, now.UTC(), got.From, g, want.From, w)
	}
}

// TestUI_ChartCache views an app's chart every 40 seconds for 70 minutes
// while its tasks end, so that minutes settle, are served from the cache
// and leave the chart's hour: each view's chart is the one a fresh
// TaskHistogram of the same range gives. After the first view, a view
// asks the store for at most the three minutes since the one before, and
// a second view in the same minute for at most two.
func TestUI_ChartCache(t *testing.T) {
	t.Parallel()
	chartStores(t, func(t *testing.T, store tasks.Store, clk chartClock) {
		ctx := context.Background()
		rec := &histogramRecorder{Store: store}
		e := testkit.StartEngine(t, rec, nil, chartFuncs)
		u := New(e, &Config{Unauthenticated: true}).(*ui)
		u.now = clk.now
		rec.take()

		for step := range 105 {
			for _, app := range []string{"app_1", "app_2"} {
				ids := endTasks(t, e, app, step%4)
				if clk.endedAt != nil {
					// Every other step's tasks are seen as late as the
					// cache allows: they ended 55 s before they are seen
					// (on PostgreSQL, a long transaction's commit).
					clk.endedAt(t, ids, clk.now().Add(-time.Duration(step%2)*55*time.Second))
				}
			}
			now := clk.now()
			got, err := u.taskChart(ctx, "app_1", now)
			if err != nil {
				t.Fatal(err)
			}
			wantFreshChart(t, store, "app_1", now, got)
			sinces := rec.take()
			if len(sinces) != 1 {
				t.Fatalf("view %d: %d TaskHistogram calls, want 1", step, len(sinces))
			}
			if step == 0 {
				if want := chartSince(now); !sinces[0].Equal(want) {
					t.Errorf("the first view asked from %v, want the chart's start %v", sinces[0], want)
				}
			} else if span := now.Sub(sinces[0]); span > 3*time.Minute {
				t.Errorf("view %d, 40 s after the one before: asked for the last %v, want at most 3 minutes", step, span)
			}

			// A second view, 10 s later, or at once if that is the next
			// minute: from the minute before this one.
			again := 10 * time.Second
			if !now.Add(again).Truncate(time.Minute).Equal(now.Truncate(time.Minute)) {
				again = 0
			}
			clk.advance(again)
			now = clk.now()
			got, err = u.taskChart(ctx, "app_1", now)
			if err != nil {
				t.Fatal(err)
			}
			wantFreshChart(t, store, "app_1", now, got)
			sinces = rec.take()
			if want := now.Truncate(time.Minute).Add(-time.Minute); len(sinces) != 1 || !sinces[0].Equal(want) {
				t.Errorf("view %d again in its minute: asked from %v, want one call from %v, the minute before", step, sinces, want)
			}
			clk.advance(40*time.Second - again)
		}
		// app_2, viewed only now, is counted from the whole hour.
		now := clk.now()
		got, err := u.taskChart(ctx, "app_2", now)
		if err != nil {
			t.Fatal(err)
		}
		wantFreshChart(t, store, "app_2", now, got)
		if got.Completed+got.Failed+got.Canceled == 0 {
			t.Error("app_2's chart counts no task, want those that ended in the last hour")
		}
	})
}

// TestUI_ChartCacheEvicts checks that the cache keeps the apps viewed most
// recently, at most its bound: an app it dropped is counted afresh.
func TestUI_ChartCacheEvicts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rec := &histogramRecorder{Store: tasks.NewMemoryStore()}
	e := testkit.NewEngine(t, rec, nil)
	u := New(e, &Config{Unauthenticated: true}).(*ui)
	now := time.Date(2026, 12, 1, 10, 30, 20, 0, time.UTC)
	u.now = func() time.Time { return now }
	view := func(app string) time.Duration {
		t.Helper()
		if _, err := u.taskChart(ctx, app, now); err != nil {
			t.Fatal(err)
		}
		sinces := rec.take()
		if len(sinces) != 1 {
			t.Fatalf("a view of %s: %d TaskHistogram calls, want 1", app, len(sinces))
		}
		return now.Sub(sinces[0])
	}
	const cold = (chartMinutes-1)*time.Minute + 20*time.Second // the whole chart, to now
	const warm = time.Minute + 20*time.Second                  // the minute before now's, to now

	u.charts = newChartCache(2)
	for _, v := range []struct {
		app  string
		want time.Duration
	}{
		{"app_a", cold}, {"app_b", cold}, {"app_a", warm},
		{"app_c", cold}, // drops app_b, viewed least recently
		{"app_a", warm}, {"app_c", warm}, {"app_b", cold},
		{"app_c", warm}, {"app_a", cold}, // app_b dropped app_a
	} {
		if got := view(v.app); got != v.want {
			t.Errorf("a view of %s asked for the last %v, want %v", v.app, got, v.want)
		}
		if n := u.charts.len(); n > 2 {
			t.Fatalf("the cache holds %d apps, want at most 2", n)
		}
	}

	u.charts = newChartCache(chartCacheApps)
	for i := range chartCacheApps + 10 {
		view(fmt.Sprintf("app_%d", i))
	}
	if n := u.charts.len(); n != chartCacheApps {
		t.Errorf("after views of %d apps the cache holds %d, want %d", chartCacheApps+10, n, chartCacheApps)
	}
	if got := view(fmt.Sprintf("app_%d", chartCacheApps+9)); got != warm {
		t.Errorf("a view of the last app viewed asked for the last %v, want %v", got, warm)
	}
	if got := view("app_0"); got != cold {
		t.Errorf("a view of the first app viewed asked for the last %v, want %v", got, cold)
	}
}

// TestUI_ChartCacheConcurrent views three apps' charts from eight
// goroutines at once while their tasks end (run it with -race): every view
// succeeds, and once the tasks have ended each chart is a fresh
// TaskHistogram's.
func TestUI_ChartCacheConcurrent(t *testing.T) {
	t.Parallel()
	apps := []string{"app_1", "app_2", "app_3"}
	for _, s := range testkit.SharedStores {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			store := s.Open(t, 1)[0]
			e := testkit.StartEngine(t, store, nil, chartFuncs)
			u := New(e, &Config{Unauthenticated: true}).(*ui)
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for g := range 8 {
				wg.Go(func() {
					for i := range 20 {
						if _, err := u.taskChart(ctx, apps[(g+i)%len(apps)], u.now()); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			for _, app := range apps {
				endTasks(t, e, app, 12)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for _, app := range apps {
				now := u.now()
				got, err := u.taskChart(ctx, app, now)
				if err != nil {
					t.Fatal(err)
				}
				wantFreshChart(t, store, app, now, got)
			}
		})
	}
}

// TestChartCache_ConcurrentAcrossMinutes drives the cache alone, from eight
// goroutines, with a clock that crosses a minute every few views and a
// store whose counts are a fixed function of the minute: every view gets
// exactly the buckets of its range, whichever view's entry the cache kept.
func TestChartCache_ConcurrentAcrossMinutes(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	bucketAt := func(m time.Time) tasks.Bucket {
		k := int(m.Sub(start) / time.Minute)
		return tasks.Bucket{Start: m, Completed: k%7 + 1, Failed: k % 3, Canceled: k % 2}
	}
	query := func(ctx context.Context, app string, since time.Time) ([]tasks.Bucket, error) {
		var out []tasks.Bucket
		for m := since; m.Before(start.Add(3 * time.Hour)); m = m.Add(time.Minute) {
			out = append(out, bucketAt(m))
		}
		return out, nil
	}
	c := newChartCache(2)
	var clock atomic.Int64 // seconds after start
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 400 {
				now := start.Add(time.Duration(clock.Add(3)) * time.Second)
				since := chartSince(now)
				app := []string{"app_a", "app_b", "app_c"}[(g+i)%3]
				got, err := c.histogram(context.Background(), app, since, now, query)
				if err != nil {
					errs <- err
					return
				}
				for j := range chartMinutes {
					m := since.Add(time.Duration(j) * time.Minute)
					if want := bucketAt(m); j >= len(got) || !got[j].Start.Equal(want.Start) ||
						got[j].Completed != want.Completed || got[j].Failed != want.Failed || got[j].Canceled != want.Canceled {
						errs <- fmt.Errorf("view of %s at %v: bucket %d is %+v, want %+v", app, now, j, got[min(j, len(got)-1)], bucketAt(m))
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
