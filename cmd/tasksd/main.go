// Command tasksd is the standalone tasks server: the HostedHooks-style HTTP
// API of package tasks, its web dashboard and webhook delivery, on an
// embedded SQLite file by default or on PostgreSQL. It registers no Go funcs: every task is
// delivered to its app's webhook endpoints.
//
//	go run ./cmd/tasksd                             # SQLite file tasks.db, port 8080
//	go run ./cmd/tasksd -addr 127.0.0.1:0 -allow-private-endpoints
//	TASKS_API_KEY=tw_... go run ./cmd/tasksd -postgres postgres://...
//
// tasksd migrate applies the database's migrations and exits; with -dry-run
// it prints the SQL it would run instead, applying nothing. tasksd itself
// migrates the database as it starts, and refuses one whose schema a newer
// tasksd migrated.
//
// Run tasksd -h for its settings; each flag has an environment twin, and a
// flag wins over its variable. The API is mounted at /api/v1 behind one API
// key, which grants every app: TASKS_API_KEY, or on SQLite a key generated
// at the first start and kept beside the database in <db>.key (mode 0600).
// The dashboard is at /ui/: log in with the same key.
// GET /healthz answers 200 while the store answers.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // IANA zones for periodic tasks, on machines without zoneinfo

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/dashboard"
	"github.com/taskwheel/tasks/internal/web"
	"github.com/taskwheel/tasks/postgres"
	"github.com/taskwheel/tasks/sqlite"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tasksd:", err)
		os.Exit(1)
	}
}

// Server limits and shutdown deadlines.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	shutdownTimeout   = 30 * time.Second // for the HTTP server, then again for the engine
	healthTimeout     = 2 * time.Second
)

// API keys.
const (
	keyPrefix    = "tw_"
	keyBytes     = 32 // random bytes in a generated key
	minKeyLength = 16 // of a key given in TASKS_API_KEY
)

// The environment twins of the flags, and the API key's variable.
const (
	envAddr          = "TASKS_ADDR"
	envDB            = "TASKS_DB"
	envPostgres      = "TASKS_POSTGRES_URL"
	envWorkers       = "TASKS_WORKERS"
	envAllowPrivate  = "TASKS_ALLOW_PRIVATE_ENDPOINTS"
	envAPIKey        = "TASKS_API_KEY"
	envEncryptionKey = "TASKS_ENCRYPTION_KEY"
	envRetainDone    = "TASKS_RETAIN_COMPLETED"
	envRetainFailed  = "TASKS_RETAIN_FAILED"
	envRetainCancel  = "TASKS_RETAIN_CANCELED"
	envDisableAfter  = "TASKS_DISABLE_ENDPOINTS_AFTER"
	envSynchronous   = "TASKS_SQLITE_SYNCHRONOUS"
	defaultAddr      = ":8080"
	defaultDB        = "tasks.db"
	keyFileExtension = ".key"
)

// config is tasksd's settings, after flags, environment and defaults.
type config struct {
	Addr                  string
	DB                    string // SQLite file; unused with Postgres
	Postgres              string // PostgreSQL URL or keyword/value DSN; "" for SQLite
	Workers               int    // 0: the engine's default
	AllowPrivateEndpoints bool
	// DisableEndpointsAfter is WebhookConfig.DisableAfter: how long
	// every delivery to an endpoint fails before it is disabled;
	// tasks.Forever for never.
	DisableEndpointsAfter time.Duration
	APIKey                string   // from TASKS_API_KEY; "" to use the key file
	EncryptionKeys        [][]byte // from TASKS_ENCRYPTION_KEY, the current first; none: secrets in plaintext
	// How long finished tasks are kept, by state: 0 for the engine's
	// default, tasks.Forever to keep them.
	RetainCompleted, RetainFailed, RetainCanceled time.Duration
	// Horizon is HandlerConfig.Horizon: how far ahead a task may be
	// scheduled; 0 for the handler's default.
	Horizon time.Duration
	// SQLiteSynchronous is sqlite.Config.Synchronous, upper case: "" for
	// its default, NORMAL.
	SQLiteSynchronous string
	// Observability (observe.go): where GET /metrics is served without
	// the key ("": on the API's listener, behind the key), and the logs.
	MetricsAddr string
	LogJSON     bool
	LogLevel    slog.Level
}

const usageText = `tasksd serves the tasks HTTP API at /api/v1 (and at /hostedhooks/api/v1 for
HostedHooks' SDKs, whose lists are bare arrays) and its dashboard at /ui/, and
delivers every task to its app's webhook endpoints, on an embedded SQLite file
(default) or PostgreSQL.

Usage: tasksd [flags]
       tasksd migrate [-dry-run] [-db path | -postgres url]

Each flag has an environment twin; a flag wins over its variable, the
variable over the default.

  -addr host:port               TASKS_ADDR      listen address (default ":8080";
                                                ":0" picks a free port)
  -db path                      TASKS_DB        SQLite database file (default
                                                "tasks.db" in the working directory)
  -postgres url                 TASKS_POSTGRES_URL
                                                run on PostgreSQL instead of SQLite
                                                (postgres://user:pass@host/db?...);
                                                requires TASKS_API_KEY
  -workers n                    TASKS_WORKERS   tasks delivered at once (default 16)
  -sqlite-synchronous mode      TASKS_SQLITE_SYNCHRONOUS
                                                normal or full: how hard SQLite waits
                                                for the disk at each commit. normal
                                                (default): a stored task survives
                                                kill -9, not always an OS crash or a
                                                power loss; full: it survives those
                                                too, for an fsync a commit (a third
                                                of the throughput, or less)
  -allow-private-endpoints      TASKS_ALLOW_PRIVATE_ENDPOINTS=1
                                                let endpoints be on loopback and
                                                private networks (127/8, ::1, 10/8,
                                                172.16/12, 192.168/16, fc00::/7 and
                                                "localhost"), for local development;
                                                link-local (169.254/16, cloud
                                                metadata) stays refused (default off)
  -retain-completed d           TASKS_RETAIN_COMPLETED
                                                how long a completed task is kept,
                                                with its attempts, before it is
                                                deleted (default 24h); its
                                                idempotency key is free again then
  -retain-failed d              TASKS_RETAIN_FAILED
                                                the same for failed tasks
                                                (default 14d)
  -retain-canceled d            TASKS_RETAIN_CANCELED
                                                the same for canceled tasks
                                                (default 7d)
  -disable-endpoints-after d    TASKS_DISABLE_ENDPOINTS_AFTER
                                                disable an endpoint once every delivery
                                                to it has failed for this long, such as
                                                72h, 30m or 5d; 0 never does (default 5d,
                                                five days). A 410 Gone answer disables
                                                it at once; PATCH {"status":"active"}
                                                or the dashboard's Enable re-enables it
  -horizon d                    TASKS_HORIZON   how far ahead a task may be scheduled;
                                                a later scheduled_run_time gets 422
                                                (default 366d)

A duration d is a Go duration such as 90m, 36h or 1h30m, or a whole number
of days such as 14d; 0 means never: a retention of 0 keeps the tasks of that
state forever. Of the tasksd processes sharing a database, one at a time
deletes, in small batches.

API key (environment only, so that it stays out of process listings):

  TASKS_API_KEY   the Bearer key that grants every app, at least 16 characters;
                  the dashboard's login takes it too.
                  Without it, on SQLite, tasksd generates one at the first start
                  and keeps it beside the database in <db>.key (mode 0600), so
                  restarts keep it. With -postgres it is required.

Encryption key (environment only):

  TASKS_ENCRYPTION_KEY
                  encrypts endpoints' signing secrets in the database
                  (AES-256-GCM): the base64 of 32 random bytes, as
                  "openssl rand -base64 32" prints it. To change keys, give
                  the new key first and the old ones after it, comma-separated:
                  at start tasksd re-encrypts every secret with the first;
                  then the old keys can be dropped. Without it, secrets are
                  stored in plaintext. Keep it apart from the database: with
                  a copy of both, the secrets can be read.

tasksd migrates the database as it starts, and refuses to start on one whose
schema a newer tasksd migrated. "tasksd migrate" only migrates, and
"tasksd migrate -dry-run" prints the SQL it would run, applying nothing
(tasksd migrate -h).

Observability (see README, "Observability"):

  -metrics-addr host:port       TASKS_METRICS_ADDR
                                                serve GET /metrics (Prometheus text)
                                                there, without the key; by default it
                                                is served on -addr, behind the key
  -log-format text|json         TASKS_LOG_FORMAT
                                                the logs' format (default text)
  -log-level level              TASKS_LOG_LEVEL debug, info, warn or error (default
                                                info); debug logs every enqueue and
                                                attempt with its task and trace IDs
  OTEL_EXPORTER_OTLP_ENDPOINT and the other standard OTEL_* variables export
  traces and metrics by OTLP over HTTP/protobuf when an endpoint is set.

GET /healthz answers 200 "ok" while the database answers, 503 otherwise.
SIGINT or SIGTERM stops tasksd gracefully: in-flight requests and running
deliveries get 30 s each to finish.
`

// errHelp is returned by parseConfig for -h: run prints the usage and
// returns nil.
var errHelp = flag.ErrHelp

// parseConfig reads the settings from args and getenv: a flag wins over its
// environment variable, the variable over the default. It does no I/O.
func parseConfig(args []string, getenv func(string) string) (*config, error) {
	fs := flag.NewFlagSet("tasksd", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints the usage and the error itself
	fs.Usage = func() {}
	c := &config{Addr: defaultAddr, DB: defaultDB, DisableEndpointsAfter: tasks.DefaultDisableAfter}
	var disableAfter string
	fs.StringVar(&c.Addr, "addr", c.Addr, "")
	fs.StringVar(&c.DB, "db", c.DB, "")
	fs.StringVar(&c.Postgres, "postgres", "", "")
	fs.IntVar(&c.Workers, "workers", 0, "")
	fs.BoolVar(&c.AllowPrivateEndpoints, "allow-private-endpoints", false, "")
	retain := []struct {
		flag, env string
		text      string
		d         *time.Duration
	}{
		{"retain-completed", envRetainDone, "", &c.RetainCompleted},
		{"retain-failed", envRetainFailed, "", &c.RetainFailed},
		{"retain-canceled", envRetainCancel, "", &c.RetainCanceled},
	}
	for i := range retain {
		fs.StringVar(&retain[i].text, retain[i].flag, "", "")
	}
	fs.StringVar(&disableAfter, "disable-endpoints-after", "", "")
	var horizon string
	fs.StringVar(&horizon, "horizon", "", "")
	fs.StringVar(&c.SQLiteSynchronous, "sqlite-synchronous", "", "")
	observeFlags(fs, c)
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("%w (run tasksd -h for the settings)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags only; run tasksd -h)", fs.Arg(0))
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	// The environment fills what the flags left unset; an empty variable
	// counts as unset.
	env := func(flagName, name string) (string, bool) {
		v := getenv(name)
		return v, v != "" && !set[flagName]
	}
	if v, ok := env("addr", envAddr); ok {
		c.Addr = v
	}
	if v, ok := env("db", envDB); ok {
		c.DB = v
	}
	if v, ok := env("postgres", envPostgres); ok {
		c.Postgres = v
	}
	if v, ok := env("workers", envWorkers); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("%s=%q: not an integer", envWorkers, v)
		}
		c.Workers = n
	}
	if v, ok := env("allow-private-endpoints", envAllowPrivate); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("%s=%q: want 1 or 0 (true or false)", envAllowPrivate, v)
		}
		c.AllowPrivateEndpoints = b
	}
	for _, r := range retain {
		if v, ok := env(r.flag, r.env); ok {
			r.text = v
		}
		if r.text == "" {
			continue // the engine's default
		}
		d, err := parseDays(r.text, "keep tasks forever")
		if err != nil {
			return nil, fmt.Errorf("-%s (%s) = %q: %w", r.flag, r.env, r.text, err)
		}
		*r.d = d
	}
	if v, ok := env("disable-endpoints-after", envDisableAfter); ok {
		disableAfter = v
	}
	if disableAfter != "" {
		d, err := parseDays(disableAfter, "never disable endpoints")
		if err != nil {
			return nil, fmt.Errorf("-disable-endpoints-after (%s) = %q: %w", envDisableAfter, disableAfter, err)
		}
		c.DisableEndpointsAfter = d
	}
	if v, ok := env("horizon", envHorizon); ok {
		horizon = v
	}
	if horizon != "" {
		d, err := parseHorizon(horizon)
		if err != nil {
			return nil, fmt.Errorf("-horizon (%s) = %q: %w", envHorizon, horizon, err)
		}
		c.Horizon = d
	}
	if v, ok := env("sqlite-synchronous", envSynchronous); ok {
		c.SQLiteSynchronous = v
	}
	if c.SQLiteSynchronous != "" {
		mode, err := parseSynchronous(c.SQLiteSynchronous)
		if err != nil {
			return nil, err
		}
		c.SQLiteSynchronous = mode
	}
	if err := observeEnv(c, env); err != nil {
		return nil, err
	}
	c.APIKey = getenv(envAPIKey)
	if v := getenv(envEncryptionKey); v != "" {
		keys, err := parseEncryptionKeys(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envEncryptionKey, err)
		}
		c.EncryptionKeys = keys
	}

	switch {
	case c.Addr == "":
		return nil, errors.New("-addr (TASKS_ADDR) must not be empty")
	case c.Workers < 0:
		return nil, fmt.Errorf("-workers (TASKS_WORKERS) = %d: must not be negative", c.Workers)
	case c.Postgres == "" && c.DB == "":
		return nil, errors.New("-db (TASKS_DB) must not be empty")
	case c.Postgres == "" && c.DB == ":memory:":
		return nil, errors.New("-db (TASKS_DB) must name a file, not :memory:")
	case c.Postgres != "" && c.APIKey == "":
		return nil, errors.New("-postgres needs TASKS_API_KEY: tasksd processes sharing a database must share one key, " +
			"so it is not generated; for example: export TASKS_API_KEY=tw_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d =)")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return nil, fmt.Errorf("-addr (TASKS_ADDR) = %q: want host:port, for example :8080 or 127.0.0.1:8080", c.Addr)
	}
	if c.APIKey != "" {
		if err := checkAPIKey(c.APIKey); err != nil {
			return nil, fmt.Errorf("%s: %w", envAPIKey, err)
		}
	}
	return c, nil
}

// disableAfterText shows -disable-endpoints-after as the log says it.
func disableAfterText(d time.Duration) string {
	if d == tasks.Forever {
		return "never"
	}
	return d.String()
}

// checkAPIKey reports whether key is unusable as a Bearer key.
func checkAPIKey(key string) error {
	if len(key) < minKeyLength {
		return fmt.Errorf("%d characters, want at least %d", len(key), minKeyLength)
	}
	for _, r := range key {
		if r <= ' ' || r >= 0x7f {
			return errors.New("holds a space, control or non-ASCII character")
		}
	}
	return nil
}

// maxDays is the most days a duration flag can be: a time.Duration holds
// about 292 years.
const maxDays = int64(tasks.Forever / (24 * time.Hour))

// parseDays reads a duration flag that may be long (-retain-*,
// -disable-endpoints-after): a Go duration ("36h"), or a whole number of
// days ("14d"). 0 means never, tasks.Forever; zero says what that does.
func parseDays(v, zero string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		switch {
		case err != nil && !errors.Is(err, strconv.ErrRange):
			return 0, errors.New("want a duration such as 36h, or a whole number of days such as 14d")
		case n > maxDays || err != nil:
			return 0, fmt.Errorf("more than %d days; use 0 to %s", maxDays, zero)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, errors.New("want a duration such as 36h, or a whole number of days such as 14d")
		}
	}
	switch {
	case d < 0:
		return 0, fmt.Errorf("must not be negative; use 0 to %s", zero)
	case d == 0:
		return tasks.Forever, nil
	}
	return d, nil
}

// retentionText describes the retention d, whose default is def, for the
// log.
func retentionText(d, def time.Duration) string {
	switch d {
	case 0:
		return def.String()
	case tasks.Forever:
		return "forever"
	}
	return d.String()
}

// parseEncryptionKeys reads TASKS_ENCRYPTION_KEY: comma-separated standard
// base64 (padded or not) of tasks.EncryptionKeySize bytes each, the current
// key first. Its errors name a key by its position, never show it.
func parseEncryptionKeys(v string) ([][]byte, error) {
	texts := strings.Split(v, ",")
	keys := make([][]byte, len(texts))
	for i, text := range texts {
		key, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(text), "="))
		switch {
		case err != nil:
			return nil, fmt.Errorf("key %d of %d is not base64", i+1, len(texts))
		case len(key) != tasks.EncryptionKeySize:
			return nil, fmt.Errorf("key %d of %d is %d bytes, want %d (openssl rand -base64 %d makes one)",
				i+1, len(texts), len(key), tasks.EncryptionKeySize, tasks.EncryptionKeySize)
		}
		keys[i] = key
	}
	return keys, nil
}

// privateNetworks are the ranges -allow-private-endpoints opens: loopback
// and private networks, not link-local (169.254.0.0/16 holds cloud metadata
// services) nor carrier-grade NAT.
var privateNetworks = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
}

// run is tasksd: it serves until ctx ends, then shuts down gracefully and
// returns nil. It writes where it listens, its database and its API key to
// stdout, and its logs to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "migrate" {
		return runMigrate(ctx, args[1:], getenv, stdout)
	}
	cfg, err := parseConfig(args, getenv)
	if errors.Is(err, errHelp) {
		_, err := io.WriteString(stdout, usageText)
		return err
	}
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	tel, err := newTelemetry(ctx, getenv)
	if err != nil {
		return err
	}
	defer tel.shutdown(context.WithoutCancel(ctx), logger)

	db, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.close()

	key, keyNote := cfg.APIKey, "from "+envAPIKey+", not shown"
	shown := "set"
	if key == "" {
		keyPath := db.path + keyFileExtension
		var generated bool
		if key, generated, err = loadOrCreateKey(keyPath); err != nil {
			return err
		}
		keyNote = "read from " + keyPath
		if generated {
			keyNote = "generated, kept in " + keyPath + ", mode 0600"
		}
		// A key from the environment is the operator's and stays out of
		// the output; one from the key file is shown, since the output is
		// where a newcomer finds it.
		shown = key
	}

	webhooks := &tasks.WebhookConfig{DisableAfter: cfg.DisableEndpointsAfter}
	if cfg.AllowPrivateEndpoints {
		webhooks.AllowNetworks = privateNetworks
		webhooks.AllowHosts = []string{"localhost"}
	}
	engCfg := &tasks.Config{
		Workers:         cfg.Workers,
		Webhooks:        webhooks,
		Logger:          logger,
		Middleware:      []tasks.Middleware{logMiddleware(logger)},
		EncryptionKeys:  cfg.EncryptionKeys,
		RetainCompleted: cfg.RetainCompleted,
		RetainFailed:    cfg.RetainFailed,
		RetainCanceled:  cfg.RetainCanceled,
	}
	tel.apply(engCfg)
	eng, err := tasks.NewEngine(db.store, engCfg)
	if err != nil {
		return err
	}
	if len(cfg.EncryptionKeys) > 0 {
		// Secrets stored in plaintext, or with an older key, move to the
		// current key. One that does not decrypt stays as it is, and
		// deliveries to its app fail, saying so, until its key is given.
		n, err := eng.ReencryptEndpoints(ctx)
		if n > 0 {
			logger.Info("encrypted endpoints' secrets with the first key of "+envEncryptionKey, "endpoints", n)
		}
		if err != nil {
			logger.Error("encrypt endpoints' secrets with the first key of "+envEncryptionKey, "err", err)
		}
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	defer ln.Close() // Serve closes it too; this covers the returns before Serve
	if err := eng.Start(ctx); err != nil {
		return err
	}
	handler, metricsURL, stopMetrics, err := tel.serve(cfg.MetricsAddr, newMux(eng, key, cfg.Horizon, logger), key, logger)
	if err != nil {
		return err
	}
	defer stopMetrics(context.WithoutCancel(ctx))
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }() // ends at srv.Shutdown below

	url := serverURL(ln.Addr())
	fmt.Fprintf(stdout, "tasksd is running.\n"+
		"  API:      %s\n"+
		"  UI:       %s (log in with the API key)\n"+
		"  Database: %s\n"+
		"  API key:  %s (%s)\n"+
		"  Metrics:  %s\n"+
		"Stop it with Ctrl-C.\n", url+apiPrefix, url+"/ui/", db.desc, shown, keyNote, metricsURL)
	logger.Info("tasksd started", "addr", ln.Addr().String(), "database", db.desc,
		"workers", cmp.Or(cfg.Workers, tasks.DefaultWorkers), "allow_private_endpoints", cfg.AllowPrivateEndpoints,
		"retain_completed", retentionText(cfg.RetainCompleted, tasks.DefaultRetainCompleted),
		"retain_failed", retentionText(cfg.RetainFailed, tasks.DefaultRetainFailed),
		"retain_canceled", retentionText(cfg.RetainCanceled, tasks.DefaultRetainCanceled),
		"disable_endpoints_after", disableAfterText(cfg.DisableEndpointsAfter),
		"metrics", metricsURL, "otlp_export", strings.Join(tel.exported, ","))

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
		logger.Error("HTTP server failed", "err", serveErr)
	}

	// Stop taking requests and let those in flight finish, then let the
	// running deliveries finish (the engine cancels them at its deadline and
	// hands their tasks back for a later attempt), then close the store.
	base := context.WithoutCancel(ctx)
	shutdownCtx, cancel := context.WithTimeout(base, shutdownTimeout)
	errShutdown := srv.Shutdown(shutdownCtx)
	cancel()
	if serveErr == nil {
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			serveErr = err
		}
	}
	stopCtx, cancel := context.WithTimeout(base, shutdownTimeout)
	errStop := eng.Stop(stopCtx)
	cancel()
	errClose := db.close()
	if err := errors.Join(serveErr, wrap("shut down HTTP server", errShutdown),
		wrap("stop engine", errStop), wrap("close database", errClose)); err != nil {
		return err
	}
	logger.Info("tasksd stopped")
	return nil
}

// wrap returns "what: err", or nil when err is nil.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// apiPrefix is where tasksd serves the API.
const apiPrefix = "/api/v1"

// newMux routes /api/v1/ to the engine's handler and /ui/ to its
// dashboard, both behind key, and GET /healthz to a check of the store.
// Any other path gets the API's 404, in problem+json.
//
// Every answer under /api/v1 is the API's, in problem+json for an error.
// So /api/v1 without its slash is the API's 404, and a path that is in the
// API as sent or once cleaned but is not clean (/api/v1//apps,
// /api/v1/./apps, //api/v1/apps, /ui/../api/v1/apps) goes to the API's
// handler, which refuses it with 404, where ServeMux would redirect it to
// its clean form with a text/html answer.
func newMux(eng *tasks.Engine, key string, horizon time.Duration, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	hc := &tasks.HandlerConfig{
		Keys:    map[string][]string{key: {"*"}},
		Horizon: horizon,
		Logger:  logger,
	}
	api := eng.Handler(hc)
	mux.Handle(apiPrefix+"/", http.StripPrefix(apiPrefix, api))
	mux.Handle(apiPrefix, http.StripPrefix(apiPrefix, api))
	mountHostedHooks(mux, eng, *hc)
	mux.Handle("/ui/", http.StripPrefix("/ui", dashboard.New(eng, &dashboard.Config{Keys: hc.Keys, Logger: logger})))
	// Any other path is nowhere: the API's handler answers it, with its
	// 404 in problem+json, rather than ServeMux with text.
	mux.Handle("/", api)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if _, _, err := eng.List(ctx, tasks.ListParams{Limit: 1}); err != nil {
			logger.Error("health check failed", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "unavailable\n")
			return
		}
		io.WriteString(w, "ok\n")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.EscapedPath(); p != web.CleanPath(p) && (inAPI(p) || inAPI(web.CleanPath(p))) {
			api.ServeHTTP(w, r) // a 404: the handler refuses unclean paths
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// inAPI reports whether the URL path p is in the API: /api/v1 or
// /hostedhooks/api/v1, or under either.
func inAPI(p string) bool {
	return under(p, apiPrefix) || under(p, hostedHooksPrefix)
}

// serverURL is the URL of the server at addr, the listener's address. An
// unspecified host (":8080") listens on every interface; the URL then
// names the loopback address, which is one of them.
func serverURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// database is the store tasksd runs on and how to describe and close it.
type database struct {
	store tasks.Store
	desc  string // for the output: "SQLite /abs/path" or a redacted URL
	path  string // the SQLite file's absolute path; "" on PostgreSQL
	close func() error
}

// openStore opens and migrates the store cfg names.
func openStore(ctx context.Context, cfg *config) (*database, error) {
	if cfg.Postgres != "" {
		// Enough connections for the workers and the API.
		store, err := postgres.Open(ctx, cfg.Postgres, &postgres.Config{
			MaxConns: max(postgres.DefaultMaxConns, cmp.Or(cfg.Workers, tasks.DefaultWorkers)+4),
		})
		if err != nil {
			return nil, fmt.Errorf("PostgreSQL %s: %w", redactDSN(cfg.Postgres), err)
		}
		var once bool
		return &database{
			store: store,
			desc:  "PostgreSQL " + redactDSN(cfg.Postgres),
			close: func() error {
				if once {
					return nil
				}
				once = true
				return store.Close()
			},
		}, nil
	}
	path, err := filepath.Abs(cfg.DB)
	if err != nil {
		return nil, fmt.Errorf("open SQLite %s: %w", cfg.DB, err)
	}
	store, err := sqlite.Open(path, &sqlite.Config{Synchronous: cfg.SQLiteSynchronous})
	if err != nil {
		return nil, err
	}
	var once bool
	return &database{
		store: store,
		desc:  "SQLite " + path,
		path:  path,
		close: func() error {
			if once {
				return nil
			}
			once = true
			return store.Close()
		},
	}, nil
}

// passwordParam matches a password in a keyword/value DSN.
var passwordParam = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)`)

// redactDSN returns dsn, a PostgreSQL URL or keyword/value string, with its
// password replaced by xxxxx.
func redactDSN(dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "(unparsable URL)"
		}
		if q := u.Query(); q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	return passwordParam.ReplaceAllString(dsn, "${1}xxxxx")
}

// loadOrCreateKey returns the API key kept in the file at path, creating
// the file with a new key (mode 0600) if it does not exist, and reports
// whether it did. O_EXCL makes two processes starting at once agree on one
// key.
func loadOrCreateKey(path string) (key string, generated bool, err error) {
	if key, err := readKey(path); !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	key = newAPIKey()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) { // another process made it just now
		key, err := readKey(path)
		return key, false, err
	}
	if err != nil {
		return "", false, fmt.Errorf("create API key file: %w", err)
	}
	_, err = io.WriteString(f, key+"\n")
	if err == nil {
		err = f.Sync()
	}
	if errClose := f.Close(); err == nil {
		err = errClose
	}
	if err != nil {
		os.Remove(path)
		return "", false, fmt.Errorf("write API key file %s: %w", path, err)
	}
	return key, true, nil
}

// readKey reads the API key in the file at path, refusing a file that
// others may read.
func readKey(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o077 != 0 && runtime.GOOS != "windows" {
		return "", fmt.Errorf("API key file %s has mode %#o: others may read it; run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read API key file: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if err := checkAPIKey(key); err != nil {
		return "", fmt.Errorf("API key file %s: %w", path, err)
	}
	return key, nil
}

// newAPIKey returns "tw_" and the unpadded base64url of 32 random bytes.
func newAPIKey() string {
	b := make([]byte, keyBytes)
	rand.Read(b) // never returns an error; crashes the program if it cannot read
	return keyPrefix + base64.RawURLEncoding.EncodeToString(b)
}
