package tasks

import (
	"slices"
	"strings"
	"testing"
)

func TestUUIDKey(t *testing.T) {
	const canon = "0190c7d2-8b1e-7a3c-9f00-1234567890ab"
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{canon, true},
		{"00000000-0000-0000-0000-000000000000", true},
		{"ffffffff-ffff-ffff-ffff-ffffffffffff", true},
		{strings.ToUpper(canon), false}, // stored as given: another ID than canon
		{"0190c7d2-8b1e-7a3c-9f00-1234567890aB", false},
		{"0190c7d28b1e7a3c9f001234567890ab", false},      // no hyphens
		{"0190c7d2-8b1e-7a3c-9f00-1234567890abc", false}, // 37
		{"0190c7d2-8b1e-7a3c-9f00-1234567890a", false},   // 35
		{"0190c7d2_8b1e-7a3c-9f00-1234567890ab", false},
		{"0190c7d-28b1e-7a3c-9f00-1234567890ab", false}, // hyphen misplaced
		{"0190c7g2-8b1e-7a3c-9f00-1234567890ab", false},
		{"{190c7d2-8b1e-7a3c-9f00-1234567890ab", false},
		{"", false},
		{"task-1", false},
	} {
		if _, got := uuidKey(tc.id); got != tc.want {
			t.Errorf("uuidKey(%q): got ok %v, want %v", tc.id, got, tc.want)
		}
	}
	k, _ := uuidKey(canon)
	want := [16]byte{0x01, 0x90, 0xc7, 0xd2, 0x8b, 0x1e, 0x7a, 0x3c, 0x9f, 0x00, 0x12, 0x34, 0x56, 0x78, 0x90, 0xab}
	if k != want {
		t.Errorf("uuidKey(%q): got %x, want %x", canon, k, want)
	}
}

// The index finds a task by the ID it was stored under, exactly, whatever
// the form of the ID, as a map of strings does; removed tasks' slots are
// reused.
func TestTaskIndex(t *testing.T) {
	const (
		lower = "0190c7d2-8b1e-7a3c-9f00-1234567890ab"
		other = "0190c7d2-8b1e-7a3c-9f00-1234567890ac"
	)
	var x taskIndex
	mk := func(id string) *memTask { return &memTask{t: Task{ID: id}} }
	a, b, c, d := mk(lower), mk(strings.ToUpper(lower)), mk("t1"), mk(other)
	for _, m := range []*memTask{a, b, c} {
		x.put(m)
	}
	for _, m := range []*memTask{a, b, c} {
		if got := x.at(m.t.ID); got != m {
			t.Errorf("at(%q): got %v, want the task stored under it", m.t.ID, got)
		}
	}
	if got, ok := x.get(other); ok || got != nil {
		t.Errorf("get(%q), never stored: got %v, %v; want nil, false", other, got, ok)
	}
	if x.len() != 3 {
		t.Errorf("len: got %d, want 3", x.len())
	}
	x.remove(lower)
	x.remove(lower) // again: nothing
	x.remove("t2")  // never stored: nothing
	if got := x.at(lower); got != nil || x.at(strings.ToUpper(lower)) != b {
		t.Errorf("after remove(%q): at gives %v and %v", lower, got, x.at(strings.ToUpper(lower)))
	}
	x.put(d)
	if len(x.slots) != 1 || x.slots[0] != d || x.at(other) != d {
		t.Errorf("the removed task's slot is not reused: slots %v", x.slots)
	}
	x.remove("t1")
	var got []string
	for m := range x.all() {
		got = append(got, m.t.ID)
	}
	slices.Sort(got)
	if want := []string{strings.ToUpper(lower), other}; !slices.Equal(got, want) || x.len() != 2 {
		t.Errorf("all: got %v (len %d), want %v", got, x.len(), want)
	}
}
