package tasks

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
