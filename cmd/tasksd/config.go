package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/taskwheel/tasks"
)

// tasksd's configuration: its flags and environment variables, their
// defaults and their parsing (see usageText), apart from what run does
// with them.

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
	envMaxConns      = "TASKS_POSTGRES_MAX_CONNS"
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
	MaxConns              int    // postgres.Config.MaxConns; 0: postgres.DefaultMaxConns
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
  -postgres-max-conns n         TASKS_POSTGRES_MAX_CONNS
                                                with -postgres, the most connections
                                                this process opens (default 16, at
                                                least 2); a process needs about 6
                                                plus one per API request under way
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
  traces and metrics by OTLP over HTTP/protobuf when an endpoint is set; at
  exit they get 5 s to flush, and export errors are logged as warnings.

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
	fs.IntVar(&c.MaxConns, "postgres-max-conns", 0, "")
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
	if v, ok := env("postgres-max-conns", envMaxConns); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("%s=%q: not an integer", envMaxConns, v)
		}
		c.MaxConns = n
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
	case c.MaxConns < 0 || c.MaxConns == 1:
		return nil, fmt.Errorf("-postgres-max-conns (TASKS_POSTGRES_MAX_CONNS) = %d: want at least 2 (the listener holds one)", c.MaxConns)
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
