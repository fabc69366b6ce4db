package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/taskwheel/tasks"
)

// Config.MaxWaiting bounds the tasks waiting to run on a MemoryStore:
// past it, Enqueue stores nothing and returns ErrOverloaded at once.
func ExampleConfig_maxWaiting() {
	ctx := context.Background()
	eng, err := tasks.NewEngine(tasks.NewMemoryStore(), &tasks.Config{MaxWaiting: 1000})
	if err != nil {
		log.Fatal(err)
	}
	nt := tasks.NewTask{AppID: "app_1", EventType: "user.welcome"}
	for range 1000 { // the engine is not started: they all wait
		if _, err := eng.Enqueue(ctx, nt); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := eng.Enqueue(ctx, nt); errors.Is(err, tasks.ErrOverloaded) {
		// nothing stored: try again in a moment, or drop it
		fmt.Println(err)
	}
	// Output: tasks: overloaded: 1000 tasks waiting to run, Config.MaxWaiting is 1000
}
