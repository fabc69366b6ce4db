package tasks_test

import (
	"testing"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/tasktest"
)

func TestMemoryStore(t *testing.T) {
	tasktest.TestStore(t, func(t *testing.T) tasks.Store { return tasks.NewMemoryStore() })
}

// F19: the memory store says it is not durable.
func TestMemoryStore_Durable(t *testing.T) {
	if got := tasks.NewMemoryStore().Durable(); got {
		t.Errorf("Durable: got %v, want false", got)
	}
}
