package tasks_test

import (
	"context"
	"fmt"
	"log"

	"github.com/taskwheel/tasks"
)

// Flow control: the tasks that call a partner's API share its quota, 10
// calls a second and 3 at a time, across every engine sharing the store;
// a task waiting for capacity stays scheduled and says why.
func ExampleEngine_SetLimit() {
	ctx := context.Background()
	eng, err := tasks.NewEngine(tasks.NewMemoryStore(), nil)
	if err != nil {
		log.Fatal(err)
	}
	l, err := eng.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "partner.api", Rate: 10, Concurrency: 3})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(l.Key, l.Rate, l.Burst, l.Concurrency)
	t, err := eng.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: "invoice.send", FlowKey: "partner.api"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(t.FlowKey)

	// Pause the key, keeping its limits: running tasks finish, no new one
	// starts. PauseLimit(ctx, app, key, false) resumes it.
	_, err = eng.PauseLimit(ctx, "app_1", "partner.api", true)
	if err != nil {
		log.Fatal(err)
	}

	_, err = eng.SetLimit(ctx, tasks.Limit{AppID: "app_1", Key: "partner.api", Burst: 5})
	fmt.Println(err)
	// Output:
	// partner.api 10 10 3
	// partner.api
	// tasks: invalid burst: needs a rate
}
