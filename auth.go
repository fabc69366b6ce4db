package tasks

// The checks of a HandlerConfig. Its keys are kept and found by package
// internal/web, which the dashboard shares.

// checkHandlerConfig panics, naming who, on a configuration that Handler
// refuses: no Keys and not Unauthenticated, or both, or a negative
// MaxBodyBytes, Horizon, MaxPageBytes or MaxListBytes.
func checkHandlerConfig(who string, c *HandlerConfig) {
	switch {
	case len(c.Keys) == 0 && !c.Unauthenticated:
		panic("tasks: " + who + ": no Keys; set Unauthenticated to serve without keys")
	case len(c.Keys) > 0 && c.Unauthenticated:
		panic("tasks: " + who + ": both Keys and Unauthenticated set")
	case c.MaxBodyBytes < 0:
		panic("tasks: " + who + ": negative MaxBodyBytes")
	case c.Horizon < 0:
		panic("tasks: " + who + ": negative Horizon")
	case c.MaxPageBytes < 0:
		panic("tasks: " + who + ": negative MaxPageBytes")
	case c.MaxListBytes < 0:
		panic("tasks: " + who + ": negative MaxListBytes")
	case c.BulkTimeout < 0:
		panic("tasks: " + who + ": negative BulkTimeout")
	}
}
