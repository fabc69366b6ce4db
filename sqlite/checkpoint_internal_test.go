package sqlite

import (
	"errors"
	"fmt"
	"testing"
)

// TestCatchUp checks when the checkpointer stops checkpointing beside the
// writer and hands the rest to a checkpoint on the writer's path: once a
// checkpoint copied little, once the WAL restarted, after catchUpTries,
// and at once on an error, which skips the writer's checkpoint.
func TestCatchUp(t *testing.T) {
	errBusy := errors.New("database is locked")
	for _, tc := range []struct {
		name    string
		first   int   // frames the checkpoint that found the WAL long saw
		frames  []int // what each further checkpoint sees; past the end, +1,000 each
		err     error // returned by the last of frames, if not nil
		calls   int
		wantErr error
	}{
		{name: "converges", first: 20000, frames: []int{23000, 23400, 23500}, calls: 3},
		{name: "first is enough", first: 20000, frames: []int{20000 + catchUpFrames}, calls: 1},
		{name: "WAL restarted", first: 20000, frames: []int{300}, calls: 1},
		{name: "writer outruns the checkpoints", first: 20000, calls: catchUpTries},
		{name: "error", first: 20000, frames: []int{23000, 0}, err: errBusy, calls: 2, wantErr: errBusy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls, last := 0, tc.first
			checkpoint := func() (int, error) {
				calls++
				if calls <= len(tc.frames) {
					last = tc.frames[calls-1]
					if calls == len(tc.frames) && tc.err != nil {
						return 0, tc.err
					}
					return last, nil
				}
				last += 1000
				return last, nil
			}
			err := catchUp(checkpoint, tc.first)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("got error %v, want %v", err, tc.wantErr)
			}
			if calls != tc.calls {
				t.Errorf("got %d checkpoints, want %d", calls, tc.calls)
			}
		})
	}
}

// TestIdleWAL checks when the checkpointer may truncate the WAL: after
// idleTicks ticks that saw the same data_version (no commit), again every
// idleTicks while it stays so (a reader may have prevented the last try),
// never when the version could not be read, and the count starts over at
// each commit.
func TestIdleWAL(t *testing.T) {
	for _, tc := range []struct {
		name     string
		versions []int64
		want     []int // indexes of versions at which still reports true
	}{
		{name: "still", versions: []int64{9, 9, 9, 9, 9}, want: []int{4}},
		{name: "tried again", versions: []int64{9, 9, 9, 9, 9, 9, 9, 9, 9, 9}, want: []int{4, 9}},
		{name: "unreadable", versions: []int64{-1, -1, -1, -1, -1, -1}},
		{name: "commits", versions: []int64{9, 9, 9, 9, 12, 12, 12, 12, 12}, want: []int{8}},
		{name: "a commit every tick", versions: []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w idleWAL
			var got []int
			for i, v := range tc.versions {
				if w.still(v) {
					got = append(got, i)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("truncations at %v, want %v", got, tc.want)
			}
		})
	}
}
