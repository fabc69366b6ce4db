package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfig_horizon(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want time.Duration
	}{
		{nil, nil, 0},
		{[]string{"-horizon", "30d"}, nil, 30 * 24 * time.Hour},
		{[]string{"-horizon", "36h"}, nil, 36 * time.Hour},
		{nil, map[string]string{"TASKS_HORIZON": "2d"}, 48 * time.Hour},
		{[]string{"-horizon", "1h"}, map[string]string{"TASKS_HORIZON": "2d"}, time.Hour},
		{nil, map[string]string{"TASKS_HORIZON": ""}, 0},
	} {
		c, err := parseConfig(tc.args, envMap(tc.env))
		if err != nil || c.Horizon != tc.want {
			t.Errorf("parseConfig(%q, %v): Horizon %v, error %v; want %v", tc.args, tc.env, c.Horizon, err, tc.want)
		}
	}
	for _, v := range []string{"0", "0d", "0s", "-1h", "-3d", "x", "1y", "999999d", ""} {
		args := []string{"-horizon", v}
		if v == "" {
			continue // an empty flag is the default
		}
		_, err := parseConfig(args, envMap(nil))
		if err == nil || !strings.Contains(err.Error(), "-horizon (TASKS_HORIZON)") {
			t.Errorf("parseConfig(%q): error %v, want one naming -horizon (TASKS_HORIZON)", args, err)
		}
	}
}

// TestRun_horizon: tasksd's API refuses a run time past -horizon with 422.
func TestRun_horizon(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "tasks.db")
	s := startServer(t, []string{"-addr", "127.0.0.1:0", "-db", db, "-horizon", "2d", "-allow-private-endpoints"}, nil)
	s.call(t, "POST", "/apps/app_1/endpoints", s.key, map[string]any{"url": "http://127.0.0.1:1/h"}, http.StatusCreated, nil)
	at := func(d time.Duration) string {
		return fmt.Sprintf(`{"event_type":"a","data":1,"scheduled_run_time":%q}`, time.Now().Add(d).UTC().Format(time.RFC3339))
	}
	s.call(t, "POST", "/apps/app_1/tasks", s.key, at(47*time.Hour), http.StatusCreated, nil)
	var p struct{ Error, Field string }
	s.call(t, "POST", "/apps/app_1/tasks", s.key, at(49*time.Hour), http.StatusUnprocessableEntity, &p)
	if p.Field != "scheduled_run_time" || !strings.Contains(p.Error, "2 days") {
		t.Errorf("a run time past the horizon: %+v, want an error on scheduled_run_time saying 2 days", p)
	}
}
