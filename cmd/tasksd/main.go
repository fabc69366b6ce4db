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
	logOTelErrors(logger)
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
		// -postgres-max-conns; 0 is postgres.DefaultMaxConns.
		store, err := postgres.Open(ctx, cfg.Postgres, &postgres.Config{
			MaxConns: cfg.MaxConns,
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
