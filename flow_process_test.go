package tasks_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// Flow limits across real processes (issue 16): child processes, the test
// binary run again, share one database and obey one concurrency limit and
// one rate limit, as the tasks themselves record.

// flowChildEnv carries a child's flowChild, as JSON; TestFlowChild skips
// without it.
const flowChildEnv = "TASKS_TEST_FLOW_CHILD"

// flowChild tells a child process what to run.
type flowChild struct {
	Store string // "sqlite" or "postgres"
	DSN   string // the SQLite file's path or the PostgreSQL DSN, with search_path
	Out   string // the file the child appends its records to
}

// The keys of the tasks that the children run (their event types), and
// their limits.
const (
	flowConcurrent  = "flow.concurrent" // Concurrency flowConcurrency; each runs flowTaskTime
	flowRated       = "flow.rated"      // Rate flowRate a second, Burst flowBurst
	flowConcurrency = 3
	flowRate        = 20
	flowBurst       = 2
	flowTaskTime    = 50 * time.Millisecond
)

// TestFlowChild is the child process of TestFlow_Processes. It runs an
// engine whose funcs record when they start and end, until its standard
// input closes.
func TestFlowChild(t *testing.T) {
	spec := os.Getenv(flowChildEnv)
	if spec == "" {
		t.Skip("TestFlow_Processes runs this in a child process")
	}
	var c flowChild
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		t.Fatalf("%s: %v", flowChildEnv, err)
	}
	out, err := os.OpenFile(c.Out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	record := func(kind string, task *tasks.Task) {
		line := fmt.Appendf(nil, "%s %s %s %d\n", kind, task.EventType, task.ID, time.Now().UnixNano())
		if _, err := out.Write(line); err != nil { // one write: the line is whole or absent
			panic(err)
		}
	}
	store := openChildStore(t, c.Store, c.DSN, 4)
	e, err := tasks.NewEngine(store, &tasks.Config{Workers: 4, Lease: liveLease, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run := func(ctx context.Context, task *tasks.Task) error {
		record("start", task)
		if task.EventType == flowConcurrent {
			select {
			case <-time.After(flowTaskTime):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		record("end", task)
		return nil
	}
	e.Register(flowConcurrent, run)
	e.Register(flowRated, run)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, os.Stdin) // until the parent closes it, or dies
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// startFlowChild starts a child process running TestFlowChild on db; it
// records into out. The child is killed, if it still runs, when t ends;
// its log is shown if t failed.
func startFlowChild(t *testing.T, db *crashDB, name, out string) *crashProc {
	t.Helper()
	spec, err := json.Marshal(flowChild{Store: db.kind, DSN: db.dsn, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	return startChild(t, name, out, filepath.Join(t.TempDir(), name+".log"), "TestFlowChild", flowChildEnv, spec)
}

// flowRecord is a line a child recorded: a func's start or end.
type flowRecord struct {
	kind, eventType, id string
	at                  time.Time
	proc                int // which child
}

// readFlowRecords returns the records of the children's files.
func readFlowRecords(t *testing.T, paths []string) []flowRecord {
	t.Helper()
	var recs []flowRecord
	for i, path := range paths {
		f, err := os.Open(path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			ns, err := strconv.ParseInt(fields[len(fields)-1], 10, 64)
			if len(fields) != 4 || err != nil {
				f.Close()
				t.Fatalf("%s: malformed line %q", path, sc.Text())
			}
			recs = append(recs, flowRecord{fields[0], fields[1], fields[2], time.Unix(0, ns), i})
		}
		f.Close()
	}
	slices.SortStableFunc(recs, func(a, b flowRecord) int { return a.at.Compare(b.at) })
	return recs
}

// TestFlow_Processes runs three child processes on one database, each an
// engine of four workers, with tasks of a key limited to three at once and
// of a key limited to 20 starts a second (burst 2). The tasks record their
// starts and ends: never more than three of the first run at once, as the
// records show, and no window of the second's starts holds more than the
// bucket allows (burst + rate × window, with a margin for the time between
// a claim and its func's start record, which a loaded machine stretches).
func TestFlow_Processes(t *testing.T) {
	const (
		procs          = 3
		concurrent     = 24
		rated          = 30
		recordingSlack = 500 * time.Millisecond
	)
	for _, d := range crashDBs {
		t.Run(d.name, func(t *testing.T) {
			db := d.open(t)
			ctx := t.Context()
			e := newEngine(t, db.store, nil)
			for _, l := range []tasks.Limit{
				{AppID: "app_1", Key: flowConcurrent, Concurrency: flowConcurrency},
				{AppID: "app_1", Key: flowRated, Rate: flowRate, Burst: flowBurst},
			} {
				if _, err := e.SetLimit(ctx, l); err != nil {
					t.Fatal(err)
				}
			}
			var ts []tasks.NewTask
			for i := range concurrent + rated {
				et := flowConcurrent
				if i >= concurrent {
					et = flowRated
				}
				ts = append(ts, tasks.NewTask{AppID: "app_1", EventType: et, Data: json.RawMessage(`{}`)})
			}
			if _, err := e.EnqueueMany(ctx, ts); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			var outs []string
			var children []*crashProc
			for i := range procs {
				out := filepath.Join(dir, fmt.Sprint("child", i, ".records"))
				outs = append(outs, out)
				children = append(children, startFlowChild(t, db, fmt.Sprint("child", i), out))
			}
			waitFor(t, 60*time.Second, "every task to end", func() bool {
				n := 0
				for _, r := range readFlowRecords(t, outs) {
					if r.kind == "end" {
						n++
					}
				}
				return n >= concurrent+rated
			})
			for _, c := range children {
				if err := c.stop(10 * time.Second); err != nil {
					t.Errorf("child %s: %v", c.name, err)
				}
			}
			recs := readFlowRecords(t, outs)

			// Concurrency: replay the starts and ends in time order.
			running, most := 0, 0
			started := map[string]int{}
			perProc := make([]int, procs)
			var starts []time.Time // of the rated tasks
			for _, r := range recs {
				if r.kind == "start" {
					started[r.id]++
					perProc[r.proc]++
				}
				if r.eventType == flowRated {
					if r.kind == "start" {
						starts = append(starts, r.at)
					}
					continue
				}
				if r.kind == "start" {
					running++
					most = max(most, running)
				} else {
					running--
				}
			}
			if most > flowConcurrency {
				t.Errorf("at most %d of the key ran at once, by their records; want at most %d", most, flowConcurrency)
			}
			if len(started) != concurrent+rated {
				t.Errorf("%d tasks started, want %d", len(started), concurrent+rated)
			}
			for id, n := range started {
				if n != 1 {
					t.Errorf("task %s started %d times, want once", id, n)
				}
			}

			// Rate: every window from one start to another.
			for i := range starts {
				for j := i + 1; j < len(starts); j++ {
					w := starts[j].Sub(starts[i])
					allowed := flowBurst + int(flowRate*(w+recordingSlack).Seconds())
					if n := j - i + 1; n > allowed {
						t.Errorf("%d starts of the rated key within %v, want at most %d (burst %d + %g/s × (window + %v))",
							n, w, allowed, flowBurst, float64(flowRate), recordingSlack)
					}
				}
			}
			first, last := starts[0], starts[len(starts)-1]
			t.Logf("%d processes: starts per process %v, most running at once %d; %d rated starts over %v (%.1f/s)",
				procs, perProc, most, len(starts), last.Sub(first).Round(time.Millisecond),
				float64(len(starts)-1)/last.Sub(first).Seconds())
		})
	}
}
