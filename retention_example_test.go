package tasks_test

import (
	"fmt"
	"log"
	"time"

	"github.com/taskwheel/tasks"
)

// Retention per terminal state: completed tasks are kept a week, failed
// ones forever, canceled ones for DefaultRetainCanceled. A negative
// retention is refused.
func ExampleConfig_retention() {
	eng, err := tasks.NewEngine(tasks.NewMemoryStore(), &tasks.Config{
		RetainCompleted: 7 * 24 * time.Hour,
		RetainFailed:    tasks.Forever, // never deleted
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = eng // Start begins the retention passes; Stop ends them

	_, err = tasks.NewEngine(tasks.NewMemoryStore(), &tasks.Config{RetainFailed: -time.Hour})
	fmt.Println(err)
	// Output: tasks: invalid Config.RetainFailed: must not be negative, not -1h0m0s (Forever keeps tasks forever)
}
