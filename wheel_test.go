package tasks

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestWheel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		start int64
		dues  []int64
		steps []int64 // advance to each in turn
		want  [][]string
	}{
		{"empty", 0, nil, []int64{1000}, [][]string{nil}},
		{"due now", 5, []int64{5, 3}, []int64{5}, [][]string{{"0", "1"}}},
		{"level 0", 0, []int64{3, 1, 2}, []int64{1, 3}, [][]string{{"1"}, {"2", "0"}}},
		{"cascade", 60, []int64{64, 70, 4095, 4096, 4097}, []int64{63, 64, 4096, 5000},
			[][]string{nil, {"0"}, {"1", "2", "3"}, {"4"}}},
		{"overflow", 0, []int64{1 << 30, 1<<30 + 1}, []int64{1<<30 - 1, 1 << 30, 1 << 31},
			[][]string{nil, {"0"}, {"1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := wheel{now: tt.start}
			for i, d := range tt.dues {
				w.add(fmt.Sprint(i), d)
			}
			for i, step := range tt.steps {
				got := entryIDs(w.advance(step, nil))
				if !slices.Equal(got, tt.want[i]) {
					t.Errorf("advance(%d) = %v, want %v", step, got, tt.want[i])
				}
			}
			if w.len != 0 {
				t.Errorf("len = %d after draining, want 0", w.len)
			}
		})
	}
}

// TestWheelRandom checks the wheel against a sorted list: next is always the
// earliest due time, and advance returns exactly the entries due by then, in
// order, however far and however irregularly time moves.
func TestWheelRandom(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		w := wheel{now: r.Int64N(1 << 20)}
		type entry struct {
			due int64
			id  string
		}
		var ref []entry
		id := 0
		for range 300 {
			if r.IntN(3) > 0 {
				// Spread over every level and the overflow list.
				due := w.now + r.Int64N(1<<r.IntN(30))
				e := entry{due, fmt.Sprint(id)}
				id++
				w.add(e.id, e.due)
				ref = append(ref, e)
				continue
			}
			slices.SortStableFunc(ref, func(a, b entry) int { return int(a.due - b.due) })
			next, ok := w.next()
			if ok != (len(ref) > 0) || ok && next != ref[0].due {
				t.Fatalf("round %d: next() = %d, %v; want %v", round, next, ok, ref)
			}
			to := w.now + r.Int64N(1<<r.IntN(26))
			got := entryIDs(w.advance(to, nil))
			var want []string
			for len(ref) > 0 && ref[0].due <= to {
				want = append(want, ref[0].id)
				ref = ref[1:]
			}
			// Entries due at the same millisecond may come in any order.
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("round %d: advance(%d) = %v, want %v", round, to, got, want)
			}
			if w.len != len(ref) {
				t.Fatalf("round %d: len = %d, want %d", round, w.len, len(ref))
			}
		}
	}
}

func BenchmarkWheel(b *testing.B) {
	w := wheel{}
	r := rand.New(rand.NewPCG(1, 2))
	var out []wheelEntry
	for i := 0; b.Loop(); i++ {
		w.add("x", w.now+r.Int64N(60_000))
		if i%16 == 0 {
			out = w.advance(w.now+4, out[:0])
		}
	}
}

// entryIDs returns the IDs of es, in order.
func entryIDs(es []wheelEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.id)
	}
	return out
}
