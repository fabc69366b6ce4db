package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/taskwheel/tasks"
)

// envHorizon is the environment twin of -horizon.
const envHorizon = "TASKS_HORIZON"

// parseHorizon reads -horizon: a Go duration ("720h") or a whole number of
// days ("30d"), as parseDays reads them, but positive: 0 would mean no
// horizon, and an API without one would take run times centuries ahead.
func parseHorizon(v string) (time.Duration, error) {
	d, err := parseDays(v, "")
	switch {
	case err != nil && strings.Contains(err.Error(), "use 0 to"), // negative, or too many days
		err == nil && d == tasks.Forever: // 0
		return 0, fmt.Errorf("want a positive duration such as 720h, or a number of days from 1 to %d such as 30d", maxDays)
	case err != nil:
		return 0, err
	}
	return d, nil
}
