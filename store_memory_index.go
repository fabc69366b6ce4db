package tasks

import "iter"

// taskIndex finds the memory store's tasks by ID, in a form that costs the
// garbage collector little. A map[string]*memTask holds two pointers per
// task (the key's bytes and the task), which the collector follows at every
// cycle in the map's hash order, a cache miss each: with 100,000 tasks
// held, that was some 40% of its marking of the store, paid again at every
// cycle while a drain allocates (see BENCHMARKS.md, "Flow control").
//
// IDs in the canonical form of a UUID (36 characters, lowercase), as the
// engine makes them, are keyed by their 16 bytes to a slot in slots: the
// map holds no pointer, so the collector does not scan it, and slots, which
// it does scan, are in the order the tasks were added, as the tasks
// themselves were allocated. Other IDs (a Store's caller may choose its
// own) are in other, as before. The form of an ID decides where it is, so
// an ID is found only as it was stored, as with a map of strings.
//
// The memoryStore's mutex guards it; its zero value is empty.
type taskIndex struct {
	byUUID map[[16]byte]uint32 // slot of each task with a canonical UUID
	slots  []*memTask          // nil where free
	free   []uint32            // free slots, reused first
	other  map[string]*memTask // tasks with any other ID
	n      int                 // tasks indexed
}

// get returns the task with the given ID.
func (x *taskIndex) get(id string) (*memTask, bool) {
	if k, ok := uuidKey(id); ok {
		i, ok := x.byUUID[k]
		if !ok {
			return nil, false
		}
		return x.slots[i], true
	}
	m, ok := x.other[id]
	return m, ok
}

// put indexes m, whose ID is not indexed yet.
func (x *taskIndex) put(m *memTask) {
	x.n++
	k, ok := uuidKey(m.t.ID)
	if !ok {
		if x.other == nil {
			x.other = make(map[string]*memTask)
		}
		x.other[m.t.ID] = m
		return
	}
	var i uint32
	if n := len(x.free); n > 0 {
		i = x.free[n-1]
		x.free = x.free[:n-1]
		x.slots[i] = m
	} else {
		i = uint32(len(x.slots))
		x.slots = append(x.slots, m)
	}
	if x.byUUID == nil {
		x.byUUID = make(map[[16]byte]uint32)
	}
	x.byUUID[k] = i
}

// remove removes the task with the given ID, if it is indexed.
func (x *taskIndex) remove(id string) {
	if k, ok := uuidKey(id); ok {
		if i, ok := x.byUUID[k]; ok {
			delete(x.byUUID, k)
			x.slots[i] = nil
			x.free = append(x.free, i)
			x.n--
		}
		return
	}
	if _, ok := x.other[id]; ok {
		delete(x.other, id)
		x.n--
	}
}

// at returns the task with the given ID, or nil.
func (x *taskIndex) at(id string) *memTask {
	m, _ := x.get(id)
	return m
}

// len returns how many tasks are indexed.
func (x *taskIndex) len() int { return x.n }

// all yields each task indexed, in no particular order; the loop must not
// change the index.
func (x *taskIndex) all() iter.Seq[*memTask] {
	return func(yield func(*memTask) bool) {
		for _, m := range x.slots {
			if m != nil && !yield(m) {
				return
			}
		}
		for _, m := range x.other {
			if !yield(m) {
				return
			}
		}
	}
}

// uuidKey returns the 16 bytes of id if id is a UUID in canonical form:
// lowercase hexadecimal digits grouped 8-4-4-4-12 by hyphens.
func uuidKey(id string) (k [16]byte, ok bool) {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return k, false
	}
	var bad byte // any digit's value with the high bit set: not a digit
	for j, i := range uuidDigits {
		hi, lo := hexLower[id[i]], hexLower[id[i+1]]
		bad |= hi | lo
		k[j] = hi<<4 | lo
	}
	return k, bad < 0x80
}

// uuidDigits are the offsets of the 16 pairs of digits in a canonical UUID.
var uuidDigits = [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// hexLower maps each lowercase hexadecimal digit to its value, and every
// other byte to 0x80.
var hexLower = func() (t [256]byte) {
	for c := range t {
		switch {
		case '0' <= c && c <= '9':
			t[c] = byte(c - '0')
		case 'a' <= c && c <= 'f':
			t[c] = byte(c - 'a' + 10)
		default:
			t[c] = 0x80
		}
	}
	return t
}()
