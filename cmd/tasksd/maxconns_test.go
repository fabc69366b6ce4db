package main

import (
	"strings"
	"testing"

	"github.com/taskwheel/tasks/internal/testdb"
	"github.com/taskwheel/tasks/postgres"
)

func TestParseConfig_postgresMaxConns(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want int
	}{
		{"default", nil, nil, 0},
		{"flag", []string{"-postgres-max-conns", "8"}, nil, 8},
		{"environment", nil, map[string]string{envMaxConns: "6"}, 6},
		{"flag wins", []string{"-postgres-max-conns", "4"}, map[string]string{envMaxConns: "6"}, 4},
	} {
		c, err := parseConfig(tt.args, envMap(tt.env))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if c.MaxConns != tt.want {
			t.Errorf("%s: MaxConns %d, want %d", tt.name, c.MaxConns, tt.want)
		}
	}
	for _, args := range [][]string{{"-postgres-max-conns", "1"}, {"-postgres-max-conns", "-2"}} {
		if _, err := parseConfig(args, envMap(nil)); err == nil || !strings.Contains(err.Error(), "-postgres-max-conns") {
			t.Errorf("parseConfig(%q): error %v, want one naming -postgres-max-conns", args, err)
		}
	}
	if _, err := parseConfig(nil, envMap(map[string]string{envMaxConns: "many"})); err == nil ||
		!strings.Contains(err.Error(), envMaxConns) {
		t.Errorf("%s=many: error %v, want one naming it", envMaxConns, err)
	}
}

// -postgres-max-conns bounds the pool of the store tasksd opens, and
// postgres.DefaultMaxConns does without it.
func TestOpenStore_postgresMaxConns(t *testing.T) {
	t.Parallel()
	_, dsn := testdb.PostgresDSN(t)
	for flag, want := range map[string]int{"0": postgres.DefaultMaxConns, "5": 5} {
		cfg, err := parseConfig([]string{"-postgres", dsn, "-postgres-max-conns", flag}, envMap(map[string]string{envAPIKey: "tw_max_conns_test_key_0123"}))
		if err != nil {
			t.Fatal(err)
		}
		db, err := openStore(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		got := db.store.(*postgres.Store).DB().Stats().MaxOpenConnections
		if err := db.close(); err != nil {
			t.Error(err)
		}
		if got != want {
			t.Errorf("-postgres-max-conns %s: pool of %d, want %d", flag, got, want)
		}
	}
}
