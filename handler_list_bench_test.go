package tasks_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// BenchmarkHandler_ListTasks measures what issue 12 asks of task listings:
// how much the process's resident memory grows while 8 clients at once
// read every page of a listing of 1,000 tasks of 1 MiB each from SQLite
// through the API, with limit=1000.
//
// It reports peak-RSS-MB, the process's high-water mark of resident memory
// (VmHWM, reset before the clients start through /proc/self/clear_refs, so
// that no peak between samples is missed) above its resident memory then,
// once what the setup took went back to the OS; and peak-heap-MB, the peak
// of the Go heap's objects, live or not yet swept, sampled every 2 ms,
// above what it was then. The clients run in the process, reading each
// page through a 32 KiB buffer: they add little. It needs Linux; run it
// with -benchtime=1x (the setup writes 1 GiB).
func BenchmarkHandler_ListTasks(b *testing.B) {
	const (
		tasksListed = 1000
		clients     = 8
	)
	if _, err := os.Stat("/proc/self/clear_refs"); err != nil {
		b.Skip("needs /proc/self/clear_refs (Linux) to reset the resident memory's high-water mark")
	}
	for _, s := range testStores[1:2] { // sqlite
		b.Run(s.name, func(b *testing.B) {
			e, err := tasks.NewEngine(s.open(b), nil)
			if err != nil {
				b.Fatal(err)
			}
			e.Register("x", func(context.Context, *tasks.Task) error { return nil })
			data := []byte(`"` + strings.Repeat("d", tasks.DefaultMaxDataBytes-2) + `"`)
			for range tasksListed {
				if _, err := e.Enqueue(b.Context(), tasks.NewTask{AppID: "app_1", EventType: "x", Data: data, RunAt: time.Now().Add(time.Hour)}); err != nil {
					b.Fatal(err)
				}
			}
			data = nil
			srv := httptest.NewServer(e.Handler(&tasks.HandlerConfig{Unauthenticated: true}))
			defer srv.Close()

			var peakRSS, peakHeap uint64
			for b.Loop() {
				debug.FreeOSMemory() // what setting up took goes back
				baseRSS, baseHeap := resident(b, "VmRSS"), heapObjects()
				if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
					b.Fatalf("reset the high-water mark of resident memory: %v", err)
				}
				stop := make(chan struct{})
				sampled := make(chan uint64)
				go func() { // ends at stop
					top := baseHeap
					tick := time.NewTicker(2 * time.Millisecond)
					defer tick.Stop()
					for {
						select {
						case <-stop:
							sampled <- top
							return
						case <-tick.C:
							top = max(top, heapObjects())
						}
					}
				}()
				var wg sync.WaitGroup
				var read, listed atomic.Int64
				for range clients {
					wg.Go(func() {
						n, tasks := readPages(b, srv)
						read.Add(n)
						listed.Add(int64(tasks))
					})
				}
				wg.Wait()
				close(stop)
				peakHeap = max(peakHeap, <-sampled-baseHeap)
				peakRSS = max(peakRSS, resident(b, "VmHWM")-baseRSS)
				if want := int64(clients * tasksListed); listed.Load() != want {
					b.Errorf("the clients listed %d tasks, want %d", listed.Load(), want)
				}
				b.SetBytes(read.Load())
			}
			b.ReportMetric(float64(peakRSS)/(1<<20), "peak-RSS-MB")
			b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MB")
		})
	}
}

// readPages reads every page of app_1's listing from srv with limit=1000,
// keeping no more of a page than its end, so that what it holds does not
// count in the peak. It returns the bytes read and the tasks listed,
// counted by their "event_type" members.
func readPages(b *testing.B, srv *httptest.Server) (n int64, listed int) {
	cursor := ""
	buf := make([]byte, 32<<10)
	for {
		resp, err := srv.Client().Get(srv.URL + "/apps/app_1/tasks?limit=1000" + cursor)
		if err != nil {
			b.Error(err)
			return n, listed
		}
		var tail tailWriter
		_, err = io.CopyBuffer(&tail, resp.Body, buf)
		resp.Body.Close()
		_, next, ok := bytes.Cut(tail.last, []byte(`,"next_cursor":`))
		if err != nil || resp.StatusCode != http.StatusOK || !ok {
			b.Errorf("page: %d %v, ending %q", resp.StatusCode, err, tail.last)
			return n, listed
		}
		n, listed = n+tail.n, listed+tail.tasks
		if next = bytes.TrimSpace(next); string(next) == "null}" {
			return n, listed
		}
		cursor = "&cursor=" + strings.Trim(string(next), `"}`)
	}
}

// tailWriter counts the bytes written to it and the tasks in them (by
// their "event_type" members, which the data of the benchmark's tasks
// does not hold), and keeps the last 512 bytes.
type tailWriter struct {
	n     int64
	tasks int
	last  []byte
}

func (w *tailWriter) Write(b []byte) (int, error) {
	w.n += int64(len(b))
	// A member split between writes is found in last and b joined.
	const member = `"event_type":`
	joined := append(w.last[max(0, len(w.last)-len(member)+1):len(w.last):len(w.last)], b[:min(len(b), len(member)-1)]...)
	w.tasks += bytes.Count(joined, []byte(member)) + bytes.Count(b, []byte(member))
	w.last = append(w.last, b...)
	if extra := len(w.last) - 512; extra > 0 {
		w.last = append(w.last[:0], w.last[extra:]...)
	}
	return len(b), nil
}

// resident returns the field of /proc/self/status named field, such as
// VmRSS or VmHWM, in bytes.
func resident(b *testing.B, field string) uint64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("%s: %v", line, err)
			}
			return kb << 10
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// heapObjects is the size of the heap's objects, live or not yet swept.
func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
