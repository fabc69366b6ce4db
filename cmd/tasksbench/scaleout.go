package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/bench"
	"github.com/taskwheel/tasks/postgres"
)

// W8, scale-out (issue 18): N engine processes on one PostgreSQL schema,
// for N = 1 to -scaleout-procs, each a copy of tasksbench run as the
// hidden sub-command scaleoutCommand with bench.Workers workers; this
// process only enqueues (an engine that is not started), so that every
// task starts in another process than the one that enqueued it. For each N,
// in turn on the same engines:
//
//   - tasks that sleep scaleoutSleep, -scaleout long at N × 800/s, all due
//     at once: tasks/s from their run time to the end of the last one,
//     against N × Workers / scaleoutSleep as the floor (the ratio is the
//     share of the workers' time spent in tasks);
//   - -scaleout-noop no-op tasks due at once: tasks/s, and the CPU the
//     database's processes (every process named postgres, other clients'
//     backends too), the engines and the whole machine used meanwhile, in
//     cores, which says what limits it;
//   - -lateness tasks due -lateness-from..-lateness-to ahead: how late
//     each started in an engine process (p50, p99, max);
//
// then each engine reports every task it ran: a task run twice, or one
// not run, is an error (and counted). An engine also reports the most
// connections its pool had in use at once (sampled every millisecond) and
// how long its calls waited for one.

// scaleoutCommand is the hidden sub-command that runs one engine of W8.
const scaleoutCommand = "scaleout-engine"

// scaleoutSleep is how long W8's slow tasks run: 16 workers then run at
// most 800 tasks/s.
const scaleoutSleep = 20 * time.Millisecond

// Event types of W8's tasks.
const (
	scaleoutSleepEvent = "w8.sleep"
	scaleoutNoopEvent  = "w8.noop"
	scaleoutLateEvent  = "w8.late"
)

// scaleoutRun is a task an engine process ran: its ID, event type and
// when it started and ended, and its scheduled run time, in Unix
// nanoseconds (all processes run on this machine, on one clock).
type scaleoutRun struct {
	ID    string `json:"id"`
	Event string `json:"e"`
	Start int64  `json:"s"`
	End   int64  `json:"f"`
	Sched int64  `json:"r,omitempty"`
}

// scaleoutReport is what an engine process writes when its stdin ends.
type scaleoutReport struct {
	Runs []scaleoutRun `json:"runs"`
	// MaxInUse is the most connections in use at once, sampled every
	// millisecond; MaxOpen the most open.
	MaxInUse, MaxOpen int
	// WaitCount and WaitDuration are the pool's: calls that waited for a
	// connection, and how long in all.
	WaitCount    int64
	WaitDuration time.Duration
}

// runScaleoutEngine is one engine process of W8: it opens the store that
// -postgres names, starts an engine of bench.Workers workers, writes
// "ready" to stdout, runs tasks until stdin ends, stops the engine and
// writes its scaleoutReport as JSON to stdout.
func runScaleoutEngine(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(scaleoutCommand, flag.ContinueOnError)
	dsn := fs.String("postgres", "", "PostgreSQL URL, with the search_path of the schema")
	maxConns := fs.Int("maxconns", 0, "postgres.Config.MaxConns; 0, its default")
	if err := fs.Parse(args); err != nil {
		return err
	}
	store, err := postgres.Open(ctx, *dsn, &postgres.Config{MaxConns: *maxConns})
	if err != nil {
		return err
	}
	defer store.Close()
	eng, err := tasks.NewEngine(store, &tasks.Config{Workers: bench.Workers})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var runs []scaleoutRun
	record := func(t *tasks.Task, start time.Time) {
		r := scaleoutRun{ID: t.ID, Event: t.EventType, Start: start.UnixNano(), End: time.Now().UnixNano()}
		if t.ScheduledRunTime != nil {
			r.Sched = t.ScheduledRunTime.UnixNano()
		}
		mu.Lock()
		runs = append(runs, r)
		mu.Unlock()
	}
	eng.Register(scaleoutSleepEvent, func(ctx context.Context, t *tasks.Task) error {
		start := time.Now()
		time.Sleep(scaleoutSleep)
		record(t, start)
		return nil
	})
	for _, e := range []string{scaleoutNoopEvent, scaleoutLateEvent} {
		eng.Register(e, func(ctx context.Context, t *tasks.Task) error {
			record(t, time.Now())
			return nil
		})
	}
	var maxInUse, maxOpen atomic.Int64
	sampled := make(chan struct{})
	sampleCtx, stopSampling := context.WithCancel(ctx)
	go func() { // joined below
		defer close(sampled)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C:
				st := store.DB().Stats()
				maxInUse.Store(max(maxInUse.Load(), int64(st.InUse)))
				maxOpen.Store(max(maxOpen.Load(), int64(st.OpenConnections)))
			}
		}
	}()
	defer func() { stopSampling(); <-sampled }()
	if err := eng.Start(ctx); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ready")
	io.Copy(io.Discard, stdin)
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := eng.Stop(stopCtx); err != nil {
		return err
	}
	stopSampling()
	<-sampled
	st := store.DB().Stats()
	mu.Lock()
	defer mu.Unlock()
	return json.NewEncoder(stdout).Encode(scaleoutReport{Runs: runs,
		MaxInUse: int(maxInUse.Load()), MaxOpen: int(maxOpen.Load()),
		WaitCount: st.WaitCount, WaitDuration: st.WaitDuration})
}

// scaleoutProc is a running engine process of W8.
type scaleoutProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startScaleoutEngines starts n engine processes on dsn and waits until
// each is ready.
func startScaleoutEngines(ctx context.Context, n int, dsn string, maxConns int) ([]*scaleoutProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var ps []*scaleoutProc
	for range n {
		cmd := exec.CommandContext(ctx, exe, scaleoutCommand, "-postgres", dsn, "-maxconns", strconv.Itoa(maxConns))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return ps, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return ps, err
		}
		if err := cmd.Start(); err != nil {
			return ps, fmt.Errorf("start engine process: %w", err)
		}
		p := &scaleoutProc{cmd: cmd, stdin: stdin, out: bufio.NewReaderSize(stdout, 1<<20)}
		ps = append(ps, p)
		line, err := p.out.ReadString('\n')
		if err != nil || line != "ready\n" {
			return ps, fmt.Errorf("engine process %d: got %q, %v; want ready", cmd.Process.Pid, line, err)
		}
	}
	return ps, nil
}

// finish closes the stdin of each process, and reads and returns their
// reports; it kills the processes that have not exited by then.
func finishScaleoutEngines(ps []*scaleoutProc) ([]scaleoutReport, error) {
	var errs []error
	var reps []scaleoutReport
	for _, p := range ps {
		p.stdin.Close()
	}
	for _, p := range ps {
		var r scaleoutReport
		if err := json.NewDecoder(p.out).Decode(&r); err != nil {
			errs = append(errs, fmt.Errorf("engine process %d: read report: %w", p.cmd.Process.Pid, err))
			p.cmd.Process.Kill()
		} else {
			reps = append(reps, r)
		}
		if err := p.cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("engine process %d: %w", p.cmd.Process.Pid, err))
		}
	}
	return reps, errors.Join(errs...)
}

// runScaleout is W8 on PostgreSQL, on a schema of its own.
func runScaleout(ctx context.Context, c *config, _ *target) (figs []figure, err error) {
	if c.postgres == "" {
		return nil, errors.New("W8 needs -postgres")
	}
	for n := 1; n <= c.scaleoutProcs; n++ {
		f, err := scaleoutOnce(ctx, c, n)
		if err != nil {
			return nil, fmt.Errorf("%d processes: %w", n, err)
		}
		figs = append(figs, f...)
	}
	return figs, nil
}

// scaleoutOnce runs W8 with n engine processes.
func scaleoutOnce(ctx context.Context, c *config, n int) (figs []figure, err error) {
	p, err := openPostgres(ctx, c.postgres)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, p.close(ctx)) }()
	dsn := c.postgres
	if !strings.Contains(dsn, "search_path") {
		if dsn, err = withParam(dsn, "search_path", p.schema); err != nil {
			return nil, err
		}
	}
	store, err := postgres.New(p.db)
	if err != nil {
		return nil, err
	}
	producer, err := tasks.NewEngine(store, nil) // never started: it only enqueues
	if err != nil {
		return nil, err
	}
	ps, err := startScaleoutEngines(ctx, n, dsn, c.scaleoutConns)
	defer func() {
		if ps != nil {
			_, ferr := finishScaleoutEngines(ps)
			err = errors.Join(err, ferr)
		}
	}()
	if err != nil {
		return nil, err
	}
	enqueue := func(event string, count int, at func(i int) time.Time) error {
		batch := make([]tasks.NewTask, 0, bench.BatchSize)
		for i := 0; i < count; i += bench.BatchSize {
			batch = batch[:0]
			for j := i; j < min(i+bench.BatchSize, count); j++ {
				batch = append(batch, tasks.NewTask{AppID: "bench", EventType: event, RunAt: at(j)})
			}
			if _, err := producer.EnqueueMany(ctx, batch); err != nil {
				return fmt.Errorf("enqueue %s: %w", event, err)
			}
		}
		return nil
	}
	// awaitDone waits until count tasks of event completed.
	awaitDone := func(event string, count int) error {
		deadline := time.Now().Add(10 * time.Minute)
		for {
			var done int
			if err := p.db.QueryRowContext(ctx, `SELECT count(*) FROM taskwheel_tasks WHERE event_type = $1 AND state = 'completed'`,
				event).Scan(&done); err != nil {
				return err
			}
			if done >= count {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %d of %d completed after 10 minutes", event, done, count)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	pids := make([]int, len(ps))
	for i, pr := range ps {
		pids[i] = pr.cmd.Process.Pid
	}

	// Slow tasks, all due at once.
	slowN := int(float64(n*bench.Workers) / scaleoutSleep.Seconds() * c.scaleout.Seconds())
	slowAt := time.Now().Add(time.Second)
	if err := enqueue(scaleoutSleepEvent, slowN, func(int) time.Time { return slowAt }); err != nil {
		return nil, err
	}
	if err := awaitDone(scaleoutSleepEvent, slowN); err != nil {
		return nil, err
	}
	// No-op tasks, all due at once, with the CPU used meanwhile.
	noopAt := time.Now().Add(time.Second)
	if err := enqueue(scaleoutNoopEvent, c.scaleoutNoop, func(int) time.Time { return noopAt }); err != nil {
		return nil, err
	}
	sleepUntil(ctx, noopAt)
	cpu0, err := sampleCPU(pids)
	if err != nil {
		return nil, err
	}
	if err := awaitDone(scaleoutNoopEvent, c.scaleoutNoop); err != nil {
		return nil, err
	}
	cpu1, err := sampleCPU(pids)
	if err != nil {
		return nil, err
	}
	// Lateness: due from..to ahead.
	base := time.Now().Add(c.latenessFrom)
	spread := c.latenessTo - c.latenessFrom
	if err := enqueue(scaleoutLateEvent, c.lateness, func(i int) time.Time {
		return base.Add(time.Duration(i) * spread / time.Duration(c.lateness))
	}); err != nil {
		return nil, err
	}
	if err := awaitDone(scaleoutLateEvent, c.lateness); err != nil {
		return nil, err
	}
	reps, err := finishScaleoutEngines(ps)
	ps = nil
	if err != nil {
		return nil, err
	}

	// Every task once, and the figures.
	seen := make(map[string]int, slowN+c.scaleoutNoop+c.lateness)
	var slowEnd, noopEnd int64
	var late []time.Duration
	early, maxInUse, maxOpen := 0, 0, 0
	var waits int64
	var waited time.Duration
	for _, r := range reps {
		maxInUse, maxOpen = max(maxInUse, r.MaxInUse), max(maxOpen, r.MaxOpen)
		waits += r.WaitCount
		waited += r.WaitDuration
		for _, run := range r.Runs {
			seen[run.ID]++
			switch run.Event {
			case scaleoutSleepEvent:
				slowEnd = max(slowEnd, run.End)
			case scaleoutNoopEvent:
				noopEnd = max(noopEnd, run.End)
			case scaleoutLateEvent:
				d := time.Duration(run.Start - run.Sched)
				if d < 0 {
					early++
				}
				late = append(late, d)
			}
		}
	}
	twice := 0
	for _, k := range seen {
		if k > 1 {
			twice++
		}
	}
	if want := slowN + c.scaleoutNoop + c.lateness; len(seen) != want || twice > 0 || early > 0 {
		return nil, fmt.Errorf("%d distinct tasks ran of %d enqueued, %d more than once, %d early", len(seen), want, twice, early)
	}
	lat := summarize(late)
	noopSecs := time.Duration(noopEnd - noopAt.UnixNano()).Seconds()
	cores := func(ticks float64) float64 { return ticks / clockTicks / cpu1.at.Sub(cpu0.at).Seconds() }
	pre := fmt.Sprintf("N=%d ", n)
	return []figure{
		{name: pre + "sleep 20ms", unit: "tasks/s", value: float64(slowN) / time.Duration(slowEnd-slowAt.UnixNano()).Seconds(),
			floor: float64(n*bench.Workers) / scaleoutSleep.Seconds()},
		{name: pre + "no-op", unit: "tasks/s", value: float64(c.scaleoutNoop) / noopSecs},
		{name: pre + "no-op CPU database", unit: "cores", value: cores(cpu1.db - cpu0.db)},
		{name: pre + "no-op CPU engines", unit: "cores", value: cores(cpu1.procs - cpu0.procs)},
		{name: pre + "no-op CPU machine", unit: "cores", value: cores(cpu1.busy - cpu0.busy)},
		{name: pre + "lateness p50", unit: "ms", value: ms(lat.P50)},
		{name: pre + "lateness p99", unit: "ms", value: ms(lat.P99)},
		{name: pre + "lateness max", unit: "ms", value: ms(lat.Max)},
		{name: pre + "double runs", unit: "tasks", value: float64(twice)},
		{name: pre + "conns in use, most", unit: "per process", value: float64(maxInUse)},
		{name: pre + "conns open, most", unit: "per process", value: float64(maxOpen)},
		{name: pre + "conn waits", unit: "ms per process", value: ms(waited) / float64(n)},
	}, nil
}

// sleepUntil sleeps until t or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(t)):
	}
}

// clockTicks is the unit of the CPU times in /proc (USER_HZ).
const clockTicks = 100

// cpuSample is the CPU time used so far, in clock ticks: by the processes
// named postgres, by the engine processes, and by the whole machine (not
// idle).
type cpuSample struct {
	at              time.Time
	db, procs, busy float64
}

// sampleCPU reads /proc for a cpuSample.
func sampleCPU(pids []int) (cpuSample, error) {
	s := cpuSample{at: time.Now()}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return s, err
	}
	engine := make(map[string]bool)
	for _, p := range pids {
		engine[strconv.Itoa(p)] = true
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // ended meanwhile
		}
		// pid (comm) state ppid … utime stime: fields 14 and 15.
		st := string(b)
		open, close := strings.IndexByte(st, '('), strings.LastIndexByte(st, ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(st[close+1:])
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		stt, _ := strconv.ParseFloat(f[12], 64)
		switch {
		case engine[e.Name()]:
			s.procs += ut + stt
		case st[open+1:close] == "postgres":
			s.db += ut + stt
		}
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseFloat(f, 64)
		if i != 3 && i != 4 && i < 8 { // not idle, iowait, or guest (counted in user)
			s.busy += v
		}
	}
	return s, nil
}

// latencies summarizes a sample of durations.
type latencies struct{ P50, P99, Max time.Duration }

// summarize returns ds's percentiles; it sorts ds.
func summarize(ds []time.Duration) latencies {
	if len(ds) == 0 {
		return latencies{}
	}
	slices.Sort(ds)
	return latencies{P50: ds[len(ds)/2], P99: ds[len(ds)*99/100], Max: ds[len(ds)-1]}
}
