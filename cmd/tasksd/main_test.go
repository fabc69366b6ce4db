package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/sqlite"
	"github.com/taskwheel/tasks/webhook"
)

// Encryption keys for TASKS_ENCRYPTION_KEY.
var (
	encryptionKey1 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	encryptionKey2 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
)

func mustBase64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// envMap is a getenv reading m.
func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	const key = "tw_0123456789abcdef"
	def := config{Addr: ":8080", DB: "tasks.db", DisableEndpointsAfter: tasks.DefaultDisableAfter}
	with := func(change func(*config)) config {
		c := def
		change(&c)
		return c
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want config
	}{
		{"defaults", nil, nil, def},
		{"flags", []string{"-addr", "127.0.0.1:0", "-db", "/tmp/x.db", "-workers", "4", "-allow-private-endpoints"}, nil,
			with(func(c *config) {
				c.Addr, c.DB, c.Workers, c.AllowPrivateEndpoints = "127.0.0.1:0", "/tmp/x.db", 4, true
			})},
		{"environment", nil, map[string]string{
			"TASKS_ADDR": ":9999", "TASKS_DB": "other.db", "TASKS_WORKERS": "3",
			"TASKS_ALLOW_PRIVATE_ENDPOINTS": "1", "TASKS_API_KEY": key,
		}, with(func(c *config) {
			c.Addr, c.DB, c.Workers, c.AllowPrivateEndpoints, c.APIKey = ":9999", "other.db", 3, true, key
		})},
		{"flags win over environment",
			[]string{"-addr", ":1", "-db", "flag.db", "-workers", "5", "-allow-private-endpoints=false"},
			map[string]string{"TASKS_ADDR": ":2", "TASKS_DB": "env.db", "TASKS_WORKERS": "6", "TASKS_ALLOW_PRIVATE_ENDPOINTS": "true"},
			with(func(c *config) { c.Addr, c.DB, c.Workers = ":1", "flag.db", 5 })},
		{"empty variables are unset", nil,
			map[string]string{"TASKS_ADDR": "", "TASKS_DB": "", "TASKS_WORKERS": "", "TASKS_ALLOW_PRIVATE_ENDPOINTS": ""}, def},
		{"private endpoints off by environment", nil, map[string]string{"TASKS_ALLOW_PRIVATE_ENDPOINTS": "0"}, def},
		{"postgres by flag", []string{"-postgres", "postgres://u:p@h/db"}, map[string]string{"TASKS_API_KEY": key},
			with(func(c *config) { c.Postgres, c.APIKey = "postgres://u:p@h/db", key })},
		{"postgres flag wins", []string{"-postgres", "postgres://flag/db"},
			map[string]string{"TASKS_POSTGRES_URL": "postgres://env/db", "TASKS_API_KEY": key},
			with(func(c *config) { c.Postgres, c.APIKey = "postgres://flag/db", key })},
		{"postgres by environment", nil,
			map[string]string{"TASKS_POSTGRES_URL": "host=h dbname=db", "TASKS_API_KEY": key},
			with(func(c *config) { c.Postgres, c.APIKey = "host=h dbname=db", key })},
		{"encryption keys, padded or not", nil,
			map[string]string{"TASKS_ENCRYPTION_KEY": encryptionKey1 + ", " + strings.TrimRight(encryptionKey2, "=")},
			with(func(c *config) { c.EncryptionKeys = [][]byte{mustBase64(encryptionKey1), mustBase64(encryptionKey2)} })},
		{"retention by flags", []string{"-retain-completed", "36h", "-retain-failed", "30d", "-retain-canceled", "0"}, nil,
			with(func(c *config) {
				c.RetainCompleted, c.RetainFailed, c.RetainCanceled = 36*time.Hour, 30*24*time.Hour, tasks.Forever
			})},
		{"retention by environment", nil,
			map[string]string{"TASKS_RETAIN_COMPLETED": "90m", "TASKS_RETAIN_FAILED": "0s", "TASKS_RETAIN_CANCELED": "1d"},
			with(func(c *config) {
				c.RetainCompleted, c.RetainFailed, c.RetainCanceled = 90*time.Minute, tasks.Forever, 24*time.Hour
			})},
		{"retention flag wins", []string{"-retain-completed", "2h"},
			map[string]string{"TASKS_RETAIN_COMPLETED": "3h", "TASKS_RETAIN_FAILED": "0d"},
			with(func(c *config) { c.RetainCompleted, c.RetainFailed = 2*time.Hour, tasks.Forever })},
		{"disable endpoints after, by flag", []string{"-disable-endpoints-after", "72h"}, nil,
			with(func(c *config) { c.DisableEndpointsAfter = 72 * time.Hour })},
		{"disable endpoints after, by environment", nil, map[string]string{"TASKS_DISABLE_ENDPOINTS_AFTER": "30m"},
			with(func(c *config) { c.DisableEndpointsAfter = 30 * time.Minute })},
		{"disable endpoints after: 0 is never", []string{"-disable-endpoints-after", "0"}, nil,
			with(func(c *config) { c.DisableEndpointsAfter = tasks.Forever })},
		{"disable endpoints after, in days", []string{"-disable-endpoints-after", "5d"}, nil,
			with(func(c *config) { c.DisableEndpointsAfter = 5 * 24 * time.Hour })},
		{"disable endpoints after: the flag wins", []string{"-disable-endpoints-after", "1h"},
			map[string]string{"TASKS_DISABLE_ENDPOINTS_AFTER": "2h"},
			with(func(c *config) { c.DisableEndpointsAfter = time.Hour })},
		{"postgres ignores an empty -db", []string{"-db", ""},
			map[string]string{"TASKS_POSTGRES_URL": "host=h", "TASKS_API_KEY": key},
			with(func(c *config) { c.DB, c.Postgres, c.APIKey = "", "host=h", key })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseConfig(tt.args, envMap(tt.env))
			if err != nil {
				t.Fatalf("parseConfig(%q): %v", tt.args, err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("parseConfig(%q)\n got %+v\nwant %+v", tt.args, *got, tt.want)
			}
		})
	}
}

func TestParseConfig_errors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // in the error
	}{
		{"unknown flag", []string{"-bogus"}, nil, "-bogus"},
		{"argument", []string{"serve"}, nil, `"serve"`},
		{"workers not a number", []string{"-workers", "many"}, nil, "-workers"},
		{"negative workers", []string{"-workers", "-1"}, nil, "-workers"},
		{"negative workers from environment", nil, map[string]string{"TASKS_WORKERS": "-2"}, "TASKS_WORKERS"},
		{"workers variable not a number", nil, map[string]string{"TASKS_WORKERS": "x"}, "TASKS_WORKERS"},
		{"private endpoints variable not a boolean", nil, map[string]string{"TASKS_ALLOW_PRIVATE_ENDPOINTS": "yes please"}, "TASKS_ALLOW_PRIVATE_ENDPOINTS"},
		{"empty addr", []string{"-addr", ""}, nil, "-addr"},
		{"addr without port", []string{"-addr", "localhost"}, nil, "-addr"},
		{"addr variable without port", nil, map[string]string{"TASKS_ADDR": "8080"}, "TASKS_ADDR"},
		{"empty db", []string{"-db", ""}, nil, "-db"},
		{"memory db", []string{"-db", ":memory:"}, nil, ":memory:"},
		{"postgres without key", []string{"-postgres", "postgres://h/db"}, nil, "TASKS_API_KEY"},
		{"short key", nil, map[string]string{"TASKS_API_KEY": "secret"}, "TASKS_API_KEY"},
		{"key with a space", nil, map[string]string{"TASKS_API_KEY": "tw_0123456789 abcdef"}, "TASKS_API_KEY"},
		{"negative retention", []string{"-retain-completed", "-1h"}, nil, `-retain-completed (TASKS_RETAIN_COMPLETED) = "-1h": must not be negative`},
		{"negative days", []string{"-retain-failed", "-2d"}, nil, "-retain-failed (TASKS_RETAIN_FAILED)"},
		{"malformed retention", []string{"-retain-canceled", "a week"}, nil, "-retain-canceled (TASKS_RETAIN_CANCELED)"},
		{"fractional days", []string{"-retain-completed", "1.5d"}, nil, "whole number of days"},
		{"retention without unit", nil, map[string]string{"TASKS_RETAIN_FAILED": "14"}, "-retain-failed (TASKS_RETAIN_FAILED)"},
		{"too many days", []string{"-retain-completed", "200000d"}, nil, "use 0 to keep tasks forever"},
		{"days past int64", []string{"-retain-completed", "99999999999999999999d"}, nil, "-retain-completed"},
		{"negative retention from environment", nil, map[string]string{"TASKS_RETAIN_CANCELED": "-5m"}, "TASKS_RETAIN_CANCELED"},
		{"encryption key not base64", nil, map[string]string{"TASKS_ENCRYPTION_KEY": "not base64!"}, "TASKS_ENCRYPTION_KEY: key 1 of 1 is not base64"},
		{"encryption key short", nil, map[string]string{"TASKS_ENCRYPTION_KEY": encryptionKey1 + "," + base64.StdEncoding.EncodeToString(make([]byte, 16))},
			"TASKS_ENCRYPTION_KEY: key 2 of 2 is 16 bytes, want 32"},
		{"disable endpoints after, malformed", []string{"-disable-endpoints-after", "5 days"}, nil, "-disable-endpoints-after"},
		{"disable endpoints after, negative", []string{"-disable-endpoints-after", "-1h"}, nil, "-disable-endpoints-after"},
		{"disable endpoints after variable, malformed", nil, map[string]string{"TASKS_DISABLE_ENDPOINTS_AFTER": "soon"}, "TASKS_DISABLE_ENDPOINTS_AFTER"},
		{"disable endpoints after variable, negative", nil, map[string]string{"TASKS_DISABLE_ENDPOINTS_AFTER": "-5m"}, "must not be negative"},
		{"encryption key empty in a list", nil, map[string]string{"TASKS_ENCRYPTION_KEY": encryptionKey1 + ","}, "TASKS_ENCRYPTION_KEY: key 2 of 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseConfig(tt.args, envMap(tt.env))
			if err == nil {
				t.Fatalf("parseConfig(%q) = %+v, want an error", tt.args, *got)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseConfig(%q) error %q, want it to name %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestParseConfig_help(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-h", "-help", "--help"} {
		if _, err := parseConfig([]string{arg}, envMap(nil)); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("parseConfig(%q) error %v, want flag.ErrHelp", arg, err)
		}
	}
}

func TestRun_help(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"-h"}, envMap(nil), &stdout, &stderr); err != nil {
		t.Fatalf("run -h: %v", err)
	}
	for _, want := range []string{"Usage: tasksd", "-addr", "TASKS_ADDR", "-db", "TASKS_DB", "-postgres", "TASKS_POSTGRES_URL",
		"-workers", "TASKS_WORKERS", "-allow-private-endpoints", "TASKS_ALLOW_PRIVATE_ENDPOINTS", "TASKS_API_KEY", "TASKS_ENCRYPTION_KEY", "/healthz",
		"-disable-endpoints-after", "TASKS_DISABLE_ENDPOINTS_AFTER", "-sqlite-synchronous", "TASKS_SQLITE_SYNCHRONOUS",
		"tasksd migrate"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("run -h printed no %q:\n%s", want, stdout.String())
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("run -h wrote to stderr: %q", stderr.String())
	}
}

func TestRun_badFlag(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-workers", "-3"}, envMap(nil), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "-workers") {
		t.Errorf("run -workers -3: error %v, want one naming -workers", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("run -workers -3 wrote to stdout: %q", stdout.String())
	}
}

func TestRedactDSN(t *testing.T) {
	t.Parallel()
	tests := []struct{ dsn, want string }{
		{"postgres://u:secret@h:5432/db?sslmode=disable", "postgres://u:xxxxx@h:5432/db?sslmode=disable"},
		{"postgresql://u@h/db", "postgresql://u@h/db"},
		{"postgres://u@h/db?password=secret&sslmode=disable", "postgres://u@h/db?password=xxxxx&sslmode=disable"},
		{"host=h user=u password=secret dbname=db", "host=h user=u password=xxxxx dbname=db"},
		{"host=h password = 'se cret\\' x' dbname=db", "host=h password = xxxxx dbname=db"},
		{"host=h PASSWORD=s", "host=h PASSWORD=xxxxx"},
		{"host=h dbname=db", "host=h dbname=db"},
	}
	for _, tt := range tests {
		if got := redactDSN(tt.dsn); got != tt.want {
			t.Errorf("redactDSN(%q) = %q, want %q", tt.dsn, got, tt.want)
		}
		if strings.Contains(redactDSN(tt.dsn), "secret") || strings.Contains(redactDSN(tt.dsn), "cret") {
			t.Errorf("redactDSN(%q) kept the password", tt.dsn)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use: the server's logs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// server is a tasksd that run serves in a goroutine.
type server struct {
	api    string   // the printed API URL, http://127.0.0.1:PORT/api/v1
	ui     string   // the printed dashboard URL, http://127.0.0.1:PORT/ui/
	key    string   // the printed API key ("set" when from TASKS_API_KEY)
	output []string // what it printed on start
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error // run's result
}

// startServer runs tasksd with args and env until stop or the end of t,
// and returns once it printed where it listens.
func startServer(t *testing.T, args []string, env map[string]string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &server{logs: new(syncBuffer), cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := run(ctx, args, envMap(env), pw, s.logs)
		pw.Close()
		s.done <- err
	}()
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("tasksd: %v\nlogs:\n%s", err, s.logs.String())
		}
	})

	lines := make(chan string)
	go func() { // reads until run closes the pipe
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				err := <-s.done
				s.done <- err
				t.Fatalf("tasksd ended before it was ready: %v\noutput: %q\nlogs:\n%s", err, s.output, s.logs.String())
			}
			s.output = append(s.output, line)
			if v, ok := strings.CutPrefix(line, "  API:"); ok {
				s.api = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "  UI:"); ok {
				s.ui, _, _ = strings.Cut(strings.TrimSpace(v), " ")
			}
			if v, ok := strings.CutPrefix(line, "  API key:"); ok {
				s.key, _, _ = strings.Cut(strings.TrimSpace(v), " ")
			}
			if strings.HasPrefix(line, "Stop it with") {
				go func() { // drain anything printed later
					for range lines {
					}
				}()
				if s.api == "" || s.ui == "" || s.key == "" {
					t.Fatalf("tasksd printed no API URL, UI URL or key: %q", s.output)
				}
				return s
			}
		case <-timeout:
			t.Fatalf("tasksd not ready after 20s; output %q\nlogs:\n%s", s.output, s.logs.String())
		}
	}
}

// stop cancels run's context and returns its result, or an error if it
// does not return within 10 seconds. Stopping twice returns nil.
func (s *server) stop() error {
	s.cancel()
	select {
	case err, ok := <-s.done:
		if ok {
			close(s.done)
		}
		return err
	case <-time.After(10 * time.Second):
		return errors.New("run did not return within 10s of its context ending")
	}
}

// call makes an API request with the server's key and decodes a JSON answer
// into out (unless nil), failing t unless the status is want.
func (s *server) call(t *testing.T, method, path, key string, body any, want int, out any) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.api+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, want, got)
	}
	if out != nil {
		if err := json.Unmarshal(got, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, got, err)
		}
	}
}

// healthz returns the status code and body of GET /healthz.
func (s *server) healthz(t *testing.T) (int, string) {
	t.Helper()
	base := strings.TrimSuffix(s.api, "/api/v1")
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRun_apiKeyPersists(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "tasks.db")
	args := []string{"-addr", "127.0.0.1:0", "-db", db}

	first := startServer(t, args, nil)
	if !strings.HasPrefix(first.key, keyPrefix) {
		t.Errorf("generated key %q, want the prefix %q", first.key, keyPrefix)
	}
	if out := strings.Join(first.output, "\n"); !strings.Contains(out, "generated") || !strings.Contains(out, db+".key") {
		t.Errorf("first start printed %q, want it to say the key was generated and kept in %s.key", out, db)
	}
	if !strings.Contains(strings.Join(first.output, "\n"), "SQLite "+db) {
		t.Errorf("output %q does not name the database %s", first.output, db)
	}
	first.call(t, "GET", "/apps/app_1/tasks", first.key, nil, http.StatusOK, nil)
	first.call(t, "GET", "/apps/app_1/tasks", first.key+"x", nil, http.StatusUnauthorized, nil)
	if err := first.stop(); err != nil {
		t.Fatalf("first run: %v", err)
	}

	fi, err := os.Stat(db + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode %#o, want 0600", got)
	}
	content, err := os.ReadFile(db + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(content)); got != first.key {
		t.Errorf("key file holds %q, want the printed key %q", got, first.key)
	}

	second := startServer(t, args, nil)
	if second.key != first.key {
		t.Errorf("second start printed key %q, want the first's %q", second.key, first.key)
	}
	if out := strings.Join(second.output, "\n"); strings.Contains(out, "generated") {
		t.Errorf("second start printed %q, want the key read, not generated", out)
	}
	second.call(t, "GET", "/apps/app_1/tasks", first.key, nil, http.StatusOK, nil)
	if err := second.stop(); err != nil {
		t.Fatalf("second run: %v", err)
	}

	// A key from the environment wins over the file and is not printed.
	const envKey = "tw_from_the_environment_0123"
	third := startServer(t, args, map[string]string{"TASKS_API_KEY": envKey})
	if out := strings.Join(third.output, "\n"); strings.Contains(out, envKey) || strings.Contains(out, first.key) {
		t.Errorf("output %q shows a key, want TASKS_API_KEY not shown", out)
	}
	third.call(t, "GET", "/apps/app_1/tasks", envKey, nil, http.StatusOK, nil)
	third.call(t, "GET", "/apps/app_1/tasks", first.key, nil, http.StatusUnauthorized, nil)
}

func TestRun_keyFileReadableByOthers(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "tasks.db")
	if err := os.WriteFile(db+".key", []byte(newAPIKey()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(db+".key", 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	err := run(t.Context(), []string{"-addr", "127.0.0.1:0", "-db", db}, envMap(nil), &stdout, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("run with a key file of mode 0644: error %v, want one saying chmod 600", err)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "k.key")
	key, generated, err := loadOrCreateKey(path)
	if err != nil || !generated {
		t.Fatalf("loadOrCreateKey on no file = %q, %v, %v; want a generated key", key, generated, err)
	}
	if len(key) != len(keyPrefix)+43 { // 32 bytes in unpadded base64
		t.Errorf("key %q has %d characters, want %d", key, len(key), len(keyPrefix)+43)
	}
	again, generated, err := loadOrCreateKey(path)
	if err != nil || generated || again != key {
		t.Errorf("loadOrCreateKey again = %q, %v, %v; want %q read", again, generated, err, key)
	}
	if other := newAPIKey(); other == key {
		t.Errorf("newAPIKey returned %q twice", key)
	}
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateKey(path); err == nil {
		t.Error("loadOrCreateKey accepted a 5-character key")
	}
}

// TestRun_disableEndpointsAfter: the engine gets -disable-endpoints-after,
// as tasksd's start log line says.
func TestRun_disableEndpointsAfter(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "disable_endpoints_after=120h0m0s"},
		{[]string{"-disable-endpoints-after", "0"}, nil, "disable_endpoints_after=never"},
		{nil, map[string]string{"TASKS_DISABLE_ENDPOINTS_AFTER": "72h"}, "disable_endpoints_after=72h0m0s"},
	} {
		db := filepath.Join(t.TempDir(), "tasks.db")
		s := startServer(t, append([]string{"-addr", "127.0.0.1:0", "-db", db}, tt.args...), tt.env)
		// tasksd logs its start right after printing where it listens.
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(s.logs.String(), "tasksd started") && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond) // polling interval, not synchronisation
		}
		if logs := s.logs.String(); !strings.Contains(logs, tt.want) {
			t.Errorf("tasksd %q with %v logged no %s:\n%s", tt.args, tt.env, tt.want, logs)
		}
	}
}

func TestRun_endToEndSQLite(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "tasks.db")
	s := startServer(t, []string{"-addr", "127.0.0.1:0", "-db", db, "-allow-private-endpoints"}, nil)
	testEndToEnd(t, s)
}

// TestRun_uncleanAPIPaths: a path that names the API once cleaned, or
// /api/v1 without its slash, gets the API's 404 problem+json, not the
// ServeMux's redirect with a text/html body.
func TestRun_uncleanAPIPaths(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "tasks.db")
	s := startServer(t, []string{"-addr", "127.0.0.1:0", "-db", db}, nil)
	root := strings.TrimSuffix(s.api, "/api/v1")
	for _, path := range []string{
		"/api/v1//apps/app_1/tasks", "/api/v1/./apps/app_1/tasks", "/api/v1/apps/app_1/./tasks",
		"/api/v1/apps/x/../app_1/tasks", "/api/v1/apps/app_1/tasks/..", "/api/v1/apps/app_1/tasks/",
		"//api/v1/apps/app_1/tasks", "/./api/v1/apps/app_1/tasks", "/ui/../api/v1/apps/app_1/tasks",
		"/api/v1", "/api/v1/", "/api/v1/..", "/api//v1/apps/app_1/tasks",
		// Escaped forms, and paths that are nowhere.
		"/api/v1%2Fapps/app_1/tasks", "/%2e%2e/api/v1/apps/app_1/tasks", "/nothing", "/api",
		// The same under the HostedHooks prefix.
		"/hostedhooks/api/v1//apps/app_1/endpoints", "/hostedhooks/api/v1/apps/app_1/./endpoints",
		"/hostedhooks/api/v1", "/hostedhooks/api/v1/", "/ui/../hostedhooks/api/v1/apps/app_1/endpoints",
	} {
		// Written by hand: a client would clean the path, or take "//x"
		// for a host.
		conn, err := net.Dial("tcp", strings.TrimPrefix(root, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: tasksd\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", path, s.key)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		var problem struct {
			Status int    `json:"status"`
			Error  string `json:"error"`
		}
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusNotFound || ct != "application/problem+json" ||
			json.Unmarshal(body, &problem) != nil || problem.Status != http.StatusNotFound || problem.Error == "" {
			t.Errorf("GET %s: %d %s %q, want 404 application/problem+json", path, resp.StatusCode, ct, body)
		}
	}
	// The rest of tasksd is as it was: a clean API path works, the
	// dashboard is served, and ServeMux redirects /ui to /ui/.
	s.call(t, "GET", "/apps/app_1/tasks", s.key, nil, http.StatusOK, nil)
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := noRedirects.Get(root + "/ui"); err != nil || resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("GET /ui: %v, %v; want a redirect to /ui/", resp, err)
	} else {
		resp.Body.Close()
	}
}

// With TASKS_ENCRYPTION_KEY, the database holds no secret in plaintext and
// deliveries verify; a new key put first takes over every secret at the
// next start, after which the old key can be dropped.
func TestRun_encryptionKey(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "tasks.db")
	args := []string{"-addr", "127.0.0.1:0", "-db", db, "-allow-private-endpoints"}
	testEndToEnd(t, startServer(t, args, map[string]string{"TASKS_ENCRYPTION_KEY": encryptionKey1}))
	storedSecret := func() string {
		t.Helper()
		store, err := sqlite.Open(db, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		var secret string
		if err := store.DB().QueryRow("SELECT secret FROM taskwheel_endpoints").Scan(&secret); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, "enc:v1:") || strings.Contains(secret, "whsec_") {
			t.Fatalf("stored secret %q, want it encrypted", secret)
		}
		return secret
	}
	first := storedSecret()

	s := startServer(t, args, map[string]string{"TASKS_ENCRYPTION_KEY": encryptionKey2 + "," + encryptionKey1})
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if logs := s.logs.String(); !strings.Contains(logs, "endpoints=1") {
		t.Errorf("logs %q, want them to say one endpoint was re-encrypted", logs)
	}
	if second := storedSecret(); second[:16] == first[:16] {
		t.Errorf("stored secret %q after the new key came first, want it under another key than %q", second, first)
	}

	// The old key dropped: the endpoint reads with the new one alone.
	s = startServer(t, args, map[string]string{"TASKS_ENCRYPTION_KEY": encryptionKey2})
	s.call(t, "GET", "/apps/app_1/endpoints", s.key, nil, http.StatusOK, nil)
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if logs := s.logs.String(); strings.Contains(logs, "level=ERROR") {
		t.Errorf("logs with the new key alone: %s", logs)
	}
}

func TestRun_endToEndPostgres(t *testing.T) {
	t.Parallel()
	_, dsn := testdb.PostgresDSN(t)
	const key = "tw_postgres_end_to_end_key"
	s := startServer(t, []string{"-addr", "127.0.0.1:0", "-postgres", dsn, "-allow-private-endpoints"},
		map[string]string{"TASKS_API_KEY": key})
	if out := strings.Join(s.output, "\n"); !strings.Contains(out, "PostgreSQL ") || strings.Contains(out, key) {
		t.Errorf("output %q: want it to name PostgreSQL and not show the key", out)
	}
	s.key = key
	testEndToEnd(t, s)
}

// delivery is a request the receiver got.
type delivery struct {
	at     time.Time
	header http.Header
	body   []byte
}

// testEndToEnd creates an endpoint and a task through s's API, as
// HostedHooks documents it, receives the signed delivery, and reads the
// task's outcome back; then it stops s.
func testEndToEnd(t *testing.T, s *server) {
	if code, body := s.healthz(t); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz: %d %q, want 200 \"ok\\n\"", code, body)
	}

	// The OpenAPI document needs no key, and names /api/v1 as its server.
	var doc struct {
		OpenAPI string `json:"openapi"`
		Servers []struct {
			URL string `json:"url"`
		} `json:"servers"`
	}
	s.call(t, "GET", "/openapi.json", "", nil, http.StatusOK, &doc)
	if doc.OpenAPI != "3.1.0" || len(doc.Servers) != 1 || doc.Servers[0].URL != "/api/v1" {
		t.Errorf("GET /api/v1/openapi.json: %+v, want OpenAPI 3.1.0 served at /api/v1", doc)
	}

	deliveries := make(chan delivery, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		deliveries <- delivery{time.Now(), r.Header.Clone(), body}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	var ep struct {
		ID            string   `json:"id"`
		URL           string   `json:"url"`
		Secret        string   `json:"secret"`
		EnabledEvents []string `json:"enabled_events"`
		Status        string   `json:"status"`
	}
	s.call(t, "POST", "/apps/app_1/endpoints", s.key, map[string]any{
		"url":            recv.URL + "/hooks",
		"description":    "end-to-end receiver",
		"enabled_events": []string{"user.created"},
	}, http.StatusCreated, &ep)
	if ep.ID == "" || ep.URL != recv.URL+"/hooks" || ep.Status != "active" || !strings.HasPrefix(ep.Secret, "whsec_") {
		t.Fatalf("created endpoint %+v, want an active one at %s/hooks with a whsec_ secret", ep, recv.URL)
	}

	// The request as HostedHooks documents it: POST with a Bearer key and a
	// JSON body of event_type, scheduled_run_time (ISO 8601, any offset) and
	// data.
	ist := time.FixedZone("IST", 5*3600+30*60)
	runAt := time.Now().Add(300 * time.Millisecond).In(ist).Truncate(time.Millisecond)
	body := fmt.Sprintf(`{
		"event_type": "user.created",
		"scheduled_run_time": %q,
		"data": {"first_name": "Ada", "email": "ada@example.com"}
	}`, runAt.Format("2006-01-02T15:04:05.000-07:00"))
	if !strings.Contains(body, "+05:30") {
		t.Fatalf("request body %s has no +05:30 offset", body)
	}
	type task struct {
		ID               string          `json:"id"`
		EventType        string          `json:"event_type"`
		Status           string          `json:"status"`
		ScheduledRunTime *time.Time      `json:"scheduled_run_time"`
		EndpointID       *string         `json:"endpoint_id"`
		CreatedAt        time.Time       `json:"created_at"`
		Data             json.RawMessage `json:"data"`
		Attempts         int             `json:"attempts"`
	}
	var created task
	s.call(t, "POST", "/apps/app_1/tasks", s.key, body, http.StatusCreated, &created)
	switch {
	case created.ID == "", created.EventType != "user.created", created.Status != "scheduled":
		t.Fatalf("created task %+v, want a scheduled user.created task with an ID", created)
	case created.ScheduledRunTime == nil || !created.ScheduledRunTime.Equal(runAt):
		t.Fatalf("created task's scheduled_run_time %v, want %v", created.ScheduledRunTime, runAt.UTC())
	case created.EndpointID != nil:
		t.Errorf("created task's endpoint_id %q, want null before delivery", *created.EndpointID)
	}
	assertJSONEqual(t, "created task's data", created.Data, `{"first_name":"Ada","email":"ada@example.com"}`)

	var got delivery
	select {
	case got = <-deliveries:
	case <-time.After(15 * time.Second):
		t.Fatalf("no delivery within 15s; logs:\n%s", s.logs.String())
	}
	if got.at.Before(runAt) {
		t.Errorf("delivered at %v, before its scheduled_run_time %v", got.at, runAt)
	}
	if err := webhook.Verify(ep.Secret, got.header, got.body); err != nil {
		t.Errorf("Verify with the endpoint's secret: %v\nheaders %v\nbody %s", err, got.header, got.body)
	}
	if id := got.header.Get("webhook-id"); id != created.ID {
		t.Errorf("webhook-id %q, want the task ID %q", id, created.ID)
	}
	var sent task
	if err := json.Unmarshal(got.body, &sent); err != nil {
		t.Fatalf("delivery body %s: %v", got.body, err)
	}
	if sent.ID != created.ID || sent.EventType != "user.created" {
		t.Errorf("delivered task %s, want task %s of user.created", got.body, created.ID)
	}
	assertJSONEqual(t, "delivered data", sent.Data, `{"first_name":"Ada","email":"ada@example.com"}`)

	// The outcome is stored just after the receiver answered.
	var final task
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.call(t, "GET", "/apps/app_1/tasks/"+created.ID, s.key, nil, http.StatusOK, &final)
		if final.Status == "completed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task still %q 10s after its delivery, want completed; logs:\n%s", final.Status, s.logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling an API that has no wait
	}
	if final.Attempts != 1 || final.EndpointID == nil || *final.EndpointID != ep.ID {
		t.Errorf("completed task: attempts %d, endpoint_id %v; want 1 and %s", final.Attempts, final.EndpointID, ep.ID)
	}

	var attempts struct {
		Data []struct {
			TaskID     string `json:"task_id"`
			Attempt    int    `json:"attempt"`
			EndpointID string `json:"endpoint_id"`
			StatusCode int    `json:"status_code"`
			Error      string `json:"error"`
		} `json:"data"`
	}
	s.call(t, "GET", "/apps/app_1/tasks/"+created.ID+"/attempts", s.key, nil, http.StatusOK, &attempts)
	if len(attempts.Data) != 1 {
		t.Fatalf("attempts %+v, want one", attempts.Data)
	}
	if a := attempts.Data[0]; a.TaskID != created.ID || a.Attempt != 1 || a.EndpointID != ep.ID || a.StatusCode/100 != 2 || a.Error != "" {
		t.Errorf("attempt %+v, want attempt 1 of task %s to endpoint %s with a 2xx status and no error", a, created.ID, ep.ID)
	}

	// The dashboard, at the printed address, takes the same key and shows
	// the task and its attempt.
	testDashboard(t, s, created.ID, ep.ID)

	select {
	case d := <-deliveries:
		t.Errorf("a second delivery: %s", d.body)
	default:
	}
	if err := s.stop(); err != nil {
		t.Errorf("run: %v", err)
	}
}

// testDashboard logs in to s's dashboard with its key and reads the page of
// the task taskID, delivered to the endpoint endpointID.
func testDashboard(t *testing.T, s *server, taskID, endpointID string) {
	t.Helper()
	if !strings.HasSuffix(s.ui, "/ui/") || !strings.HasPrefix(s.ui, strings.TrimSuffix(s.api, "/api/v1")) {
		t.Fatalf("UI URL %q, want /ui/ on the server of %s", s.ui, s.api)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(s.ui+"login", url.Values{"key": {s.key}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/ui/" {
		t.Fatalf("POST /ui/login: %d at %s, want 200 at the app picker /ui/", resp.StatusCode, resp.Request.URL)
	}
	resp, err = c.Get(s.ui + "apps/app_1/tasks/" + taskID)
	if err != nil {
		t.Fatal(err)
	}
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), taskID) ||
		!strings.Contains(string(page), endpointID) || !strings.Contains(string(page), "state-completed") {
		t.Errorf("GET the task's page: %d, want 200 showing the completed task and its endpoint; page:\n%s", resp.StatusCode, page)
	}
}

// assertJSONEqual fails t unless got and want hold equal JSON values.
func assertJSONEqual(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("%s %s: %v", what, got, err)
		return
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s %s, want %s", what, got, want)
	}
}
