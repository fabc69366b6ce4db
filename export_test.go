package tasks

import "time"

// Unexported functions that the black-box tests (package tasks_test) test
// directly, as pure functions: the engine applies each of them on the
// methods that take user input.
var (
	ParseSchedule       = parseSchedule
	ValidateEndpointURL = validateEndpointURL
	ValidateEventType   = validateEventType
)

// Schedule is the unexported schedule, for the tests' type assertion that
// robfig's cron.Schedule satisfies it.
type Schedule = schedule

// SetRetentionPace paces e's retention goroutine for a test that cannot
// wait a minute: its first pass comes after about interval, and so does
// each next; it holds the role for term, and deletes batch tasks per
// PurgeTasks. Call it before Start.
func SetRetentionPace(e *Engine, interval, term time.Duration, batch int) {
	e.retain = retention{first: interval, interval: interval, term: term, batch: batch, minPause: time.Millisecond}
}
