package postgres

import (
	"testing"
	"time"

	"github.com/taskwheel/tasks"
)

// TestParsePayload checks what the listener reads from the payloads of
// migration 0021's triggers: one task, or the earliest of a statement's
// and the latest due time; anything else is not ours.
func TestParsePayload(t *testing.T) {
	t.Parallel()
	at := func(us int64) time.Time { return time.UnixMicro(us).UTC() }
	tests := []struct {
		in    string
		first tasks.Due
		last  time.Time
		ok    bool
	}{
		{"1700000000000000 0190-abc", tasks.Due{ID: "0190-abc", RunAt: at(1700000000000000)}, time.Time{}, true},
		{"1700000000000000 id 1700000000500000", tasks.Due{ID: "id", RunAt: at(1700000000000000)}, at(1700000000500000), true},
		{"", tasks.Due{}, time.Time{}, false},
		{"1700000000000000", tasks.Due{}, time.Time{}, false},
		{"x id", tasks.Due{}, time.Time{}, false},
		{"1700000000000000 ", tasks.Due{}, time.Time{}, false},
		// IDs with spaces, as tasks the app stored by SQL may have.
		{"1 id x", tasks.Due{ID: "id x", RunAt: at(1)}, time.Time{}, true},
		{"1 id 2 3", tasks.Due{ID: "id 2", RunAt: at(1)}, at(3), true},
		{"1700000000000000 order 17", tasks.Due{ID: "order 17", RunAt: at(1700000000000000)}, time.Time{}, true},
		{"5 a  b 9", tasks.Due{ID: "a  b", RunAt: at(5)}, at(9), true},
	}
	for _, tt := range tests {
		first, last, ok := parsePayload(tt.in)
		if ok != tt.ok || ok && (first != tt.first || !last.Equal(tt.last)) {
			t.Errorf("parsePayload(%q): got %+v, %v, %v; want %+v, %v, %v", tt.in, first, last, ok, tt.first, tt.last, tt.ok)
		}
	}
}
