package tasktest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/sqlite"
	"github.com/taskwheel/tasks/tasktest"
)

// signUp is application code under test: it enqueues a welcome email for
// a new user.
func signUp(ctx context.Context, eng *tasks.Engine, email string) error {
	data, err := json.Marshal(map[string]string{"email": email, "plan": "free"})
	if err != nil {
		return err
	}
	_, err = eng.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: "user.welcome", Data: data})
	return err
}

func ExampleRequireEnqueued() {
	t := &testing.T{} // in a test, the test's t
	ctx := context.Background()
	store := tasks.NewMemoryStore()
	eng, err := tasks.NewEngine(store, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := signUp(ctx, eng, "ann@example.com"); err != nil {
		log.Fatal(err)
	}

	task := tasktest.RequireEnqueued(ctx, t, store, tasktest.EnqueuedParams{
		EventType: "user.welcome",
		Data:      json.RawMessage(`{"email":"ann@example.com"}`), // a part of the task's data
	})
	fmt.Println(task.EventType, task.State, string(task.Data))
	tasktest.RequireNotEnqueued(ctx, t, store, tasktest.EnqueuedParams{EventType: "user.goodbye"})
	// Output: user.welcome scheduled {"email":"ann@example.com","plan":"free"}
}

func ExampleRequireEnqueuedTx() {
	t := &testing.T{} // in a test, the test's t
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "example") // in a test, t.TempDir()
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(filepath.Join(dir, "tasks.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	eng, err := tasks.NewEngine(store, nil)
	if err != nil {
		log.Fatal(err)
	}

	// The code under test enqueues in its transaction.
	tx, err := store.DB().BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := eng.EnqueueTx(ctx, tx, tasks.NewTask{AppID: "app_1", EventType: "order.placed",
		Data: json.RawMessage(`{"order":42,"total":"9.99"}`)}); err != nil {
		log.Fatal(err)
	}

	// The task is there for the transaction, not yet for the store.
	p := tasktest.EnqueuedParams{EventType: "order.placed", Data: json.RawMessage(`{"order":42}`)}
	task := tasktest.RequireEnqueuedTx(ctx, t, store, tx, p)
	tasktest.RequireNotEnqueued(ctx, t, store, p)
	fmt.Println(task.EventType, task.State)
	// Output: order.placed scheduled
}

func ExampleRunTask() {
	t := &testing.T{} // in a test, the test's t
	ctx := context.Background()
	store := tasks.NewMemoryStore()
	eng, err := tasks.NewEngine(store, nil)
	if err != nil {
		log.Fatal(err)
	}
	// The application's registrations, as in production.
	eng.Register("user.welcome", func(ctx context.Context, task *tasks.Task) error {
		var in struct{ Email string }
		if err := json.Unmarshal(task.Data, &in); err != nil {
			return tasks.Permanent(err)
		}
		fmt.Printf("welcome %s (attempt %d)\n", in.Email, task.Attempts)
		return nil
	})
	if err := signUp(ctx, eng, "ann@example.com"); err != nil {
		log.Fatal(err)
	}

	// Run the task it enqueued, here and now, without starting the engine.
	task := tasktest.RequireEnqueued(ctx, t, store, tasktest.EnqueuedParams{EventType: "user.welcome"})
	if err := tasktest.RunTask(ctx, t, eng, task); err != nil {
		fmt.Println("failed:", err)
	}
	// Output: welcome ann@example.com (attempt 1)
}

func ExampleRunDue() {
	t := &testing.T{} // in a test, the test's t
	ctx := context.Background()
	store := tasks.NewMemoryStore()
	eng, err := tasks.NewEngine(store, nil)
	if err != nil {
		log.Fatal(err)
	}
	eng.Register("trial.ending", func(ctx context.Context, task *tasks.Task) error {
		fmt.Println("trial ending:", string(task.Data))
		return nil
	})
	// The code under test schedules a reminder 13 days ahead.
	now := time.Now()
	_, err = eng.Enqueue(ctx, tasks.NewTask{AppID: "app_1", EventType: "trial.ending",
		Data: json.RawMessage(`{"user":7}`), RunAt: now.AddDate(0, 0, 13)})
	if err != nil {
		log.Fatal(err)
	}

	// Twelve days later, nothing is due; a day after that, the reminder
	// runs, and is recorded completed. Nobody sleeps.
	fmt.Println("after 12 days:", len(tasktest.RunDue(ctx, t, eng, now.AddDate(0, 0, 12))), "tasks ran")
	ran := tasktest.RunDue(ctx, t, eng, now.AddDate(0, 0, 13))
	fmt.Println("after 13 days:", len(ran), "task ran, now", ran[0].State)
	// Output:
	// after 12 days: 0 tasks ran
	// trial ending: {"user":7}
	// after 13 days: 1 task ran, now completed
}
