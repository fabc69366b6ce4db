package tasks_test

// ACCEPTANCE O1: a trace crosses the queue and the process. Process A (the
// test) creates a task over HTTP with a traceparent; process B (the test
// binary run again as a child, TestObserveChild) runs the attempt, which
// delivers the task to a receiver here. B's attempt span must be in A's
// trace, a child of A's enqueue span, and the delivery must carry the trace.

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/postgres"
)

// observeChildEnv carries the child's observeChild, as JSON.
const observeChildEnv = "TASKS_TEST_OBSERVE_CHILD"

type observeChild struct {
	DSN   string // PostgreSQL, with search_path
	Spans string // the file the child writes its spans to, one a line
}

// fileExporter writes each span as a line: name, trace ID, span ID, parent
// span ID.
type fileExporter struct{ f *os.File }

func (x fileExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	for _, s := range spans {
		if _, err := fmt.Fprintf(x.f, "%s\t%s\t%s\t%s\n", s.Name(), s.SpanContext().TraceID(), s.SpanContext().SpanID(), s.Parent().SpanID()); err != nil {
			return err
		}
	}
	return nil
}

func (x fileExporter) Shutdown(context.Context) error { return x.f.Sync() }

// TestObserveChild is process B of TestObserve_TraceAcrossProcesses: an
// engine that delivers tasks, tracing to a file, until its standard input
// closes.
func TestObserveChild(t *testing.T) {
	spec := os.Getenv(observeChildEnv)
	if spec == "" {
		t.Skip("TestObserve_TraceAcrossProcesses runs this in a child process")
	}
	var c observeChild
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(c.Spans)
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(fileExporter{f}))
	db, err := sql.Open("pgx", c.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, err := postgres.New(db)
	if err != nil {
		t.Fatal(err)
	}
	e, err := tasks.NewEngine(store, &tasks.Config{
		TracerProvider: tp,
		PollInterval:   50 * time.Millisecond,
		Webhooks:       &tasks.WebhookConfig{AllowNetworks: loopback},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	bufio.NewReader(os.Stdin).ReadString('\n') // until stdin closes
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		t.Error(err)
	}
	if err := tp.Shutdown(ctx); err != nil {
		t.Error(err)
	}
}

func TestObserve_TraceAcrossProcesses(t *testing.T) {
	db, dsn := testdb.PostgresDSN(t)
	store, err := postgres.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}

	// The receiver, in process A.
	got := make(chan http.Header, 1)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Clone():
		default:
		}
	}))
	defer recv.Close()

	// Process A: an engine that only enqueues, behind the HTTP API.
	spansA := tracetest.NewInMemoryExporter()
	tpA := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spansA))
	a, err := tasks.NewEngine(store, &tasks.Config{TracerProvider: tpA, Webhooks: &tasks.WebhookConfig{AllowNetworks: loopback}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateEndpoint(t.Context(), tasks.NewEndpoint{AppID: "app_1", URL: recv.URL}); err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(a.Handler(&tasks.HandlerConfig{Keys: map[string][]string{"key": {"*"}}}))
	defer api.Close()

	// Process B.
	spansB := filepath.Join(t.TempDir(), "spans")
	spec, _ := json.Marshal(observeChild{DSN: dsn, Spans: spansB})
	cmd := exec.Command(os.Args[0], "-test.run=^TestObserveChild$", "-test.v", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), observeChildEnv+"="+string(spec))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("child's output:\n%s", out.String())
		}
	}()

	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	req, _ := http.NewRequest(http.MethodPost, api.URL+"/apps/app_1/tasks", strings.NewReader(`{"event_type":"user.created","data":{}}`))
	req.Header.Set("Authorization", "Bearer key")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Traceparent", parent)
	req.Header.Set("Tracestate", "k=v")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: got status %d, want 201", resp.StatusCode)
	}

	var h http.Header
	select {
	case h = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery within 30 s")
	}
	stdin.Close()
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("child: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the child did not stop within 30 s")
	}

	const traceID = "0af7651916cd43dd8448eb211c80319c"
	var send trace.SpanID
	for _, s := range spansA.GetSpans() {
		if s.Name == "send user.created" {
			send = s.SpanContext.SpanID()
			if s.SpanContext.TraceID().String() != traceID || s.Parent.SpanID().String() != "b7ad6b7169203331" {
				t.Errorf("A's enqueue span: got trace %s parent %s, want trace %s parent b7ad6b7169203331", s.SpanContext.TraceID(), s.Parent.SpanID(), traceID)
			}
		}
	}
	if !send.IsValid() {
		t.Fatalf("A made no span \"send user.created\"; it made %v", spansA.GetSpans())
	}
	b, err := os.ReadFile(spansB)
	if err != nil {
		t.Fatal(err)
	}
	var process, post []string
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimSpace(line), "\t")
		switch f[0] {
		case "process user.created":
			process = f
		case "POST":
			post = f
		}
	}
	if process == nil || post == nil {
		t.Fatalf("B's spans lack \"process user.created\" or \"POST\":\n%s", b)
	}
	if process[1] != traceID || process[3] != send.String() {
		t.Errorf("B's attempt span: got trace %s parent %s, want trace %s parent %s (A's enqueue span)", process[1], process[3], traceID, send)
	}
	if post[1] != traceID || post[3] != process[2] {
		t.Errorf("B's delivery span: got trace %s parent %s, want trace %s parent %s", post[1], post[3], traceID, process[2])
	}
	if want := "00-" + traceID + "-" + post[2] + "-01"; h.Get("Traceparent") != want {
		t.Errorf("delivery: got traceparent %q, want %q", h.Get("Traceparent"), want)
	}
	if h.Get("Tracestate") != "k=v" {
		t.Errorf("delivery: got tracestate %q, want %q", h.Get("Tracestate"), "k=v")
	}
}
