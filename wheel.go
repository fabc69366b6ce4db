package tasks

import (
	"math/bits"
	"time"
)

// wheel is a hierarchical timer wheel (Varghese and Lauck) of task IDs keyed
// by due time in ticks of wheelTick. Level 0 has one slot per tick,
// each higher level slots wheelSlots times wider; an entry sits in the lowest
// level whose current period contains its due time, and moves down a level
// ("cascades") when time enters its slot. Adding is O(1), and finding the
// earliest due time is a bitmap scan plus, on a higher level, a look at one
// slot. The scheduler sleeps until that time, so it wakes when the next task
// is due instead of polling.
//
// The four levels reach 2^24 ticks (28 minutes) ahead; later entries wait in
// an overflow list. The scheduler only keeps a short window of upcoming tasks in
// the wheel, so the overflow list is rarely used.
//
// Time only moves forward through advance. A wheel is not safe for concurrent
// use; its zero value is an empty wheel at time 0.
type wheel struct {
	now      int64 // every entry due at or before now has been returned
	slots    [wheelLevels][wheelSlots][]wheelEntry
	occupied [wheelLevels]uint64 // bit i set when slots[level][i] is not empty
	overflow []wheelEntry
	len      int
}

type wheelEntry struct {
	due int64
	id  string
}

const (
	wheelTick   = 100 * time.Microsecond
	wheelBits   = 6
	wheelSlots  = 1 << wheelBits
	wheelLevels = 4
)

// add puts id in the wheel, due at due. An entry due at or before the
// wheel's time is returned by the next advance.
func (w *wheel) add(id string, due int64) {
	w.len++
	w.place(wheelEntry{max(due, w.now), id})
}

// place files e by how far its due time is from now.
func (w *wheel) place(e wheelEntry) {
	diff := e.due ^ w.now
	for level := range wheelLevels {
		if diff>>(wheelBits*(level+1)) == 0 {
			i := (e.due >> (wheelBits * level)) & (wheelSlots - 1)
			w.slots[level][i] = append(w.slots[level][i], e)
			w.occupied[level] |= 1 << i
			return
		}
	}
	w.overflow = append(w.overflow, e)
}

// next returns the earliest due time in the wheel, or false when it is empty.
func (w *wheel) next() (int64, bool) {
	for level := range wheelLevels {
		if w.occupied[level] == 0 {
			continue
		}
		// Entries on a level are all in the current period of the level
		// above, and at or after now, so the lowest occupied slot holds the
		// earliest of them, and any lower level's entries are earlier than
		// any higher level's.
		i := bits.TrailingZeros64(w.occupied[level])
		if level == 0 {
			return w.now&^(wheelSlots-1) | int64(i), true
		}
		return earliest(w.slots[level][i]), true
	}
	if len(w.overflow) > 0 {
		return earliest(w.overflow), true
	}
	return 0, false
}

func earliest(es []wheelEntry) int64 {
	m := es[0].due
	for _, e := range es[1:] {
		m = min(m, e.due)
	}
	return m
}

// advance moves the wheel's time to now and appends to out, and returns,
// every entry due at or before now, earliest first.
func (w *wheel) advance(now int64, out []wheelEntry) []wheelEntry {
	for {
		t, ok := w.next()
		if !ok || t > now {
			break
		}
		w.moveTo(t)
		i := t & (wheelSlots - 1)
		out = append(out, w.slots[0][i]...)
		w.len -= len(w.slots[0][i])
		w.slots[0][i] = w.slots[0][i][:0]
		w.occupied[0] &^= 1 << i
	}
	if now > w.now {
		w.moveTo(now)
	}
	return out
}

// moveTo sets the wheel's time to t, which is not after the earliest entry,
// cascading every slot whose period t enters.
func (w *wheel) moveTo(t int64) {
	old := w.now
	w.now = t
	if t>>(wheelBits*wheelLevels) != old>>(wheelBits*wheelLevels) {
		over := w.overflow
		w.overflow = nil
		for _, e := range over {
			w.place(e)
		}
	}
	for level := wheelLevels - 1; level > 0; level-- {
		shift := wheelBits * level
		if t>>shift == old>>shift {
			continue
		}
		i := (t >> shift) & (wheelSlots - 1)
		if w.occupied[level]&(1<<i) == 0 {
			continue
		}
		es := w.slots[level][i]
		w.slots[level][i] = nil
		w.occupied[level] &^= 1 << i
		for _, e := range es {
			w.place(e)
		}
	}
}
