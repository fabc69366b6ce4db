package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// W12, tasksd end to end (issue 18): a tasksd process (built from this
// module with go build, or -tasksd) on a fresh SQLite file, with a webhook
// endpoint on a receiver in this process that answers 200, and this
// process creating tasks over HTTP:
//
//   - for -tasksd-duration, bench.Workers keep-alive clients creating tasks
//     as fast as tasksd answers: creates/s, and deliveries/s the receiver
//     got meanwhile — the maximum;
//   - then, each for -tasksd-duration again, at 50% and at 90% of that
//     maximum, open loop (one request every 1/rate, however long the
//     others take): the create latency p50 and p99, from the time each
//     request was due to be sent to its answer, and deliveries/s.
//
// It runs only when named, on the sqlite store.

// tasksdKey is the API key W12's tasksd runs with.
const tasksdKey = "tw_tasksbench-w12-key-0123456789abcdef"

// runTasksd is W12.
func runTasksd(ctx context.Context, c *config, _ *target) (figs []figure, err error) {
	dir, err := os.MkdirTemp("", "tasksbench-tasksd-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := c.tasksdBin
	if bin == "" {
		bin = filepath.Join(dir, "tasksd")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/taskwheel/tasks/cmd/tasksd")
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build tasksd (run tasksbench in the module, or pass -tasksd): %w: %s", err, out)
		}
	}

	// The receiver: 200 to every delivery, counted.
	var delivered atomic.Int64
	recv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		delivered.Add(1)
		w.WriteHeader(http.StatusOK)
	}), ReadHeaderTimeout: 10 * time.Second}
	rln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go recv.Serve(rln) // ended by Close below
	defer recv.Close()

	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "-addr", addr, "-db", filepath.Join(dir, "tasks.db"), "-allow-private-endpoints")
	cmd.Env = append(os.Environ(), "TASKS_API_KEY="+tasksdKey)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start tasksd: %w", err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if err != nil {
			err = fmt.Errorf("%w\ntasksd's output:\n%s", err, log.Bytes())
		}
	}()

	base := "http://" + addr + "/api/v1/apps/bench"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 0}, Timeout: 30 * time.Second}
	// Wait for tasksd, then subscribe the receiver to every event.
	endpoint := fmt.Appendf(nil, `{"url":"http://%s/hook","enabled_events":"*"}`, rln.Addr())
	deadline := time.Now().Add(time.Minute)
	for {
		err := apiPost(ctx, client, base+"/endpoints", endpoint, http.StatusCreated)
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("create endpoint: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	body := []byte(`{"event_type":"bench.e2e","data":{"user":"u_123","plan":"pro"}}`)
	create := func(ctx context.Context) error {
		return apiPost(ctx, client, base+"/tasks", body, http.StatusCreated)
	}

	// The maximum: closed loop.
	d := c.tasksdDuration
	d0 := delivered.Load()
	var created atomic.Int64
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, d)
	err = parallel(lctx, 16, func(ctx context.Context) error {
		for ctx.Err() == nil {
			if err := create(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			created.Add(1)
		}
		return nil
	})
	cancel()
	elapsed := time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("create at the most: %w", err)
	}
	maxRate := float64(created.Load()) / elapsed.Seconds()
	figs = append(figs,
		figure{name: "max creates", unit: "requests/s", value: maxRate},
		figure{name: "max deliveries", unit: "deliveries/s", value: float64(delivered.Load()-d0) / elapsed.Seconds()})

	for _, share := range []float64{0.5, 0.9} {
		rate := share * maxRate
		d0 := delivered.Load()
		lat, elapsed, err := openLoop(ctx, rate, d, create)
		if err != nil {
			return nil, fmt.Errorf("create at %.0f%%: %w", 100*share, err)
		}
		pre := fmt.Sprintf("%.0f%% ", 100*share)
		figs = append(figs,
			figure{name: pre + "creates", unit: "requests/s", value: float64(len(lat)) / elapsed.Seconds()},
			figure{name: pre + "deliveries", unit: "deliveries/s", value: float64(delivered.Load()-d0) / elapsed.Seconds()},
			figure{name: pre + "create p50", unit: "ms", value: ms(lat[len(lat)/2])},
			figure{name: pre + "create p99", unit: "ms", value: ms(lat[len(lat)*99/100])})
	}
	return figs, nil
}

// openLoop calls f rate times a second for d, each call at its time in its
// own goroutine whatever the others take, and returns how long each took
// from the time it was due, sorted, and the time from the first call's
// time to the last answer.
func openLoop(ctx context.Context, rate float64, d time.Duration, f func(context.Context) error) ([]time.Duration, time.Duration, error) {
	n := int(rate * d.Seconds())
	if n < 1 {
		return nil, 0, errors.New("rate too low")
	}
	every := time.Duration(float64(time.Second) / rate)
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * every)
		if w := time.Until(due); w > 0 {
			select {
			case <-ctx.Done():
				wg.Wait()
				return nil, 0, ctx.Err()
			case <-time.After(w):
			}
		}
		wg.Add(1)
		go func() { // joined by wg
			defer wg.Done()
			errs[i] = f(ctx)
			lat[i] = time.Since(due)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return nil, 0, err
	}
	slices.Sort(lat)
	return lat, elapsed, nil
}

// apiPost posts body to url with W12's key and wants status back.
func apiPost(ctx context.Context, c *http.Client, url string, body []byte, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tasksdKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("POST %s: got %s, want %d: %s", url, resp.Status, want, excerpt)
	}
	return nil
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}

// parallel runs f in g goroutines and returns the first error.
func parallel(ctx context.Context, g int, f func(ctx context.Context) error) error {
	errs := make([]error, g)
	var wg sync.WaitGroup
	for i := range g {
		wg.Add(1)
		go func() { // joined by wg
			defer wg.Done()
			errs[i] = f(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
