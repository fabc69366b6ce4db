package tasks

import (
	"cmp"
	"context"
	"slices"
)

// deliveryParams validates the arguments of ListDeliveryAttempts.
func deliveryParams(offset, limit int) error {
	switch {
	case offset < 0:
		return invalid("offset", "must not be negative, not %d", offset)
	case limit < 1 || limit > MaxListLimit:
		return invalid("limit", "must be between 1 and %d, not %d", MaxListLimit, limit)
	}
	return nil
}

// deliveryOrder orders attempts as ListDeliveryAttempts answers them:
// newest first, by StartedAt, then TaskID, Number and EndpointID, each
// descending.
func deliveryOrder(a, b Attempt) int {
	return cmp.Or(
		b.StartedAt.Compare(a.StartedAt),
		cmp.Compare(b.TaskID, a.TaskID),
		cmp.Compare(b.Number, a.Number),
		cmp.Compare(b.EndpointID, a.EndpointID))
}

// ListDeliveryAttempts implements [Store].
func (s *memoryStore) ListDeliveryAttempts(ctx context.Context, appID string, offset, limit int) ([]Attempt, error) {
	if err := deliveryParams(offset, limit); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	var as []Attempt
	for _, m := range s.order {
		if m.t.AppID != appID {
			continue
		}
		for _, a := range m.attempts {
			if a.EndpointID != "" {
				as = append(as, a)
			}
		}
	}
	s.mu.Unlock()
	slices.SortFunc(as, deliveryOrder)
	if offset >= len(as) {
		return nil, nil
	}
	return as[offset:min(len(as), offset+limit)], nil
}
