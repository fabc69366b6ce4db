package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfig_observe(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		args    []string
		env     map[string]string
		addr    string
		json    bool
		level   slog.Level
		wantErr string
	}{
		{name: "defaults", level: slog.LevelInfo},
		{name: "flags", args: []string{"-metrics-addr", "127.0.0.1:9090", "-log-format", "json", "-log-level", "debug"},
			addr: "127.0.0.1:9090", json: true, level: slog.LevelDebug},
		{name: "environment", env: map[string]string{"TASKS_METRICS_ADDR": ":9091", "TASKS_LOG_FORMAT": "json", "TASKS_LOG_LEVEL": "warn"},
			addr: ":9091", json: true, level: slog.LevelWarn},
		{name: "flags win", args: []string{"-log-format", "text", "-log-level", "error"},
			env: map[string]string{"TASKS_LOG_FORMAT": "json", "TASKS_LOG_LEVEL": "debug"}, level: slog.LevelError},
		{name: "bad format", args: []string{"-log-format", "xml"}, wantErr: "-log-format"},
		{name: "bad format variable", env: map[string]string{"TASKS_LOG_FORMAT": "xml"}, wantErr: "TASKS_LOG_FORMAT"},
		{name: "bad level", args: []string{"-log-level", "loud"}, wantErr: "-log-level"},
		{name: "bad level variable", env: map[string]string{"TASKS_LOG_LEVEL": "loud"}, wantErr: "TASKS_LOG_LEVEL"},
		{name: "metrics addr without port", args: []string{"-metrics-addr", "localhost"}, wantErr: "-metrics-addr"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := parseConfig(tt.args, envMap(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseConfig(%q): got error %v, want one naming %s", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.MetricsAddr != tt.addr || c.LogJSON != tt.json || c.LogLevel != tt.level {
				t.Errorf("got MetricsAddr %q, LogJSON %v, LogLevel %v; want %q, %v, %v", c.MetricsAddr, c.LogJSON, c.LogLevel, tt.addr, tt.json, tt.level)
			}
		})
	}
}

// get returns the status and body of GET url, with key unless it is "".
func get(t *testing.T, url, key string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRun_metrics is ACCEPTANCE O3: GET /metrics, on the API's listener,
// needs the key.
func TestRun_metrics(t *testing.T) {
	t.Parallel()
	const key = "tw_0123456789abcdef"
	s := startServer(t, []string{"-addr", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "tasks.db")},
		map[string]string{"TASKS_API_KEY": key})
	url := strings.TrimSuffix(s.api, apiPrefix) + metricsPath
	if code, body := get(t, url, ""); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without the key: got %d %s, want 401", code, body)
	}
	if code, body := get(t, url, "tw_wrong_key_0123456"); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics with a wrong key: got %d %s, want 401", code, body)
	}
	// A task enqueued (due in an hour: not delivered) is counted; the
	// counters are observable ones, read when collected.
	s.call(t, "POST", "/apps/app_1/endpoints", key, map[string]any{"url": "https://example.com/hook"}, http.StatusCreated, nil)
	s.call(t, "POST", "/apps/app_1/tasks", key, map[string]any{"event_type": "user.created", "data": map[string]any{},
		"scheduled_run_time": time.Now().Add(time.Hour).Format(time.RFC3339)}, http.StatusCreated, nil)
	code, body := get(t, url, key)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics with the key: got %d, want 200", code)
	}
	for _, want := range []string{"taskwheel_tasks_live{", `taskwheel_state="scheduled"`, "go_goroutines ",
		"# TYPE messaging_client_sent_messages_total counter",
		`messaging_client_sent_messages_total{messaging_destination_name="user.created",messaging_operation_name="send",messaging_system="taskwheel"`} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /metrics: no %q in\n%s", want, body)
		}
	}
}

// TestRun_metricsAddr: with -metrics-addr, GET /metrics is served there,
// without the key.
func TestRun_metricsAddr(t *testing.T) {
	t.Parallel()
	s := startServer(t, []string{"-addr", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "tasks.db"),
		"-metrics-addr", "127.0.0.1:0", "-log-format", "json"}, nil)
	var url string
	for _, line := range s.output {
		if v, ok := strings.CutPrefix(line, "  Metrics:"); ok {
			url = strings.TrimSpace(v)
		}
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("tasksd printed no metrics URL: %q", s.output)
	}
	if code, body := get(t, url, ""); code != http.StatusOK || !strings.Contains(body, "taskwheel_tasks_live") {
		t.Errorf("GET %s without a key: got %d, want 200 with taskwheel_tasks_live; body\n%s", url, code, body)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	// The logs are JSON, a record a line.
	lines := strings.Split(strings.TrimSpace(s.logs.String()), "\n")
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line %q is not JSON: %v", line, err)
		}
	}
	if !strings.Contains(s.logs.String(), `"msg":"tasksd started"`) {
		t.Errorf("no JSON record of the start in:\n%s", s.logs.String())
	}
}

// TestRun_logsTaskAndTrace: at -log-level debug, tasksd logs each attempt
// with its task's ID and the ID of the trace that created the task, here
// the traceparent of the create request (traces are not exported: no
// OTEL_EXPORTER_OTLP_ENDPOINT), and the delivery carries that trace.
func TestRun_logsTaskAndTrace(t *testing.T) {
	t.Parallel()
	s := startServer(t, []string{"-addr", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "tasks.db"),
		"-allow-private-endpoints", "-log-level", "debug", "-log-format", "json"}, nil)
	got := make(chan http.Header, 1)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Clone():
		default:
		}
	}))
	defer recv.Close()
	s.call(t, "POST", "/apps/app_1/endpoints", s.key, map[string]any{"url": recv.URL}, http.StatusCreated, nil)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.api+"/apps/app_1/tasks",
		strings.NewReader(`{"event_type":"user.created","data":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var task struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&task)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: got status %d, want 201", resp.StatusCode)
	}
	select {
	case h := <-got:
		if tp := h.Get("Traceparent"); !strings.Contains(tp, traceID) {
			t.Errorf("delivery: got traceparent %q, want one of trace %s", tp, traceID)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery within 20 s")
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	found := false
	for line := range strings.Lines(s.logs.String()) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "task attempt succeeded" {
			found = rec["task_id"] == task.ID && rec["trace_id"] == traceID
		}
	}
	if !found {
		t.Errorf("no record \"task attempt succeeded\" with task_id %s and trace_id %s in:\n%s", task.ID, traceID, s.logs.String())
	}
}

// TestRun_otlp: with OTEL_EXPORTER_OTLP_ENDPOINT set, tasksd exports traces
// and metrics there by OTLP over HTTP, at the latest when it stops.
func TestRun_otlp(t *testing.T) {
	paths := make(chan string, 100)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Header.Get("Content-Type") == "application/x-protobuf" {
			select {
			case paths <- r.URL.Path:
			default:
			}
		}
	}))
	defer collector.Close()
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL}
	for k, v := range env {
		t.Setenv(k, v) // the exporters read the environment themselves
	}
	s := startServer(t, []string{"-addr", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "tasks.db")}, env)
	// A span: the create of a task (nothing is subscribed; it waits).
	s.call(t, "POST", "/apps/app_1/endpoints", s.key, map[string]any{"url": "https://example.com/hook"}, http.StatusCreated, nil)
	s.call(t, "POST", "/apps/app_1/tasks", s.key, map[string]any{"event_type": "user.created", "data": nil,
		"scheduled_run_time": time.Now().Add(time.Hour).Format(time.RFC3339)}, http.StatusCreated, nil)
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(paths) > 0 {
		seen[<-paths] = true
	}
	if !seen["/v1/traces"] || !seen["/v1/metrics"] {
		t.Errorf("the collector got OTLP requests at %v, want /v1/traces and /v1/metrics", seen)
	}
}
