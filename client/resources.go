package client

import (
	"context"
	"net/http"
	"time"
)

// ---- endpoints

// Endpoints returns the webhook endpoints of app, oldest first, without
// their secrets.
func (c *Client) Endpoints(ctx context.Context, app string) ([]*Endpoint, error) {
	var out struct {
		Data []*Endpoint `json:"data"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, path: appPath(app, "endpoints"), retry: true, out: &out}); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// CreateEndpoint creates a webhook endpoint of app; the answer holds its
// Secret.
func (c *Client) CreateEndpoint(ctx context.Context, app string, ne NewEndpoint) (*Endpoint, error) {
	return c.endpoint(ctx, call{method: http.MethodPost, path: appPath(app, "endpoints"), body: ne})
}

// GetEndpoint returns the endpoint id of app, without its secret.
func (c *Client) GetEndpoint(ctx context.Context, app, id string) (*Endpoint, error) {
	return c.endpoint(ctx, call{method: http.MethodGet, path: appPath(app, "endpoints", id), retry: true})
}

// UpdateEndpoint changes the fields of the endpoint id of app that u sets.
func (c *Client) UpdateEndpoint(ctx context.Context, app, id string, u EndpointUpdate) (*Endpoint, error) {
	return c.endpoint(ctx, call{method: http.MethodPatch, path: appPath(app, "endpoints", id), body: u})
}

// DeleteEndpoint deletes the endpoint id of app.
func (c *Client) DeleteEndpoint(ctx context.Context, app, id string) error {
	err := c.do(ctx, call{method: http.MethodDelete, path: appPath(app, "endpoints", id)})
	return err
}

// RotateEndpointSecret gives the endpoint id of app a new secret, which the
// answer holds; the old one keeps signing deliveries too for overlap (whole
// seconds, at most 30 days), so that receivers switch without a gap. A
// negative overlap means the server's default, one day.
func (c *Client) RotateEndpointSecret(ctx context.Context, app, id string, overlap time.Duration) (*Endpoint, error) {
	body := map[string]int64{}
	if overlap >= 0 {
		body["overlap_seconds"] = int64(overlap / time.Second)
	}
	return c.endpoint(ctx, call{method: http.MethodPost, path: appPath(app, "endpoints", id, "rotate_secret"), body: body})
}

// endpoint makes a call that answers an endpoint.
func (c *Client) endpoint(ctx context.Context, cl call) (*Endpoint, error) {
	ep := new(Endpoint)
	cl.out = ep
	if err := c.do(ctx, cl); err != nil {
		return nil, err
	}
	return ep, nil
}

// ---- schedules

// Schedules returns the periodic tasks of app, oldest first.
func (c *Client) Schedules(ctx context.Context, app string) ([]*Schedule, error) {
	var out struct {
		Data []*Schedule `json:"data"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, path: appPath(app, "schedules"), retry: true, out: &out}); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// CreateSchedule creates a periodic task of app.
func (c *Client) CreateSchedule(ctx context.Context, app string, ns NewSchedule) (*Schedule, error) {
	data := ns.Data
	ns.Data = nil
	body, err := withData(ns, data)
	if err != nil {
		return nil, err
	}
	return c.schedule(ctx, call{method: http.MethodPost, path: appPath(app, "schedules"), body: body})
}

// GetSchedule returns the periodic task id of app.
func (c *Client) GetSchedule(ctx context.Context, app, id string) (*Schedule, error) {
	return c.schedule(ctx, call{method: http.MethodGet, path: appPath(app, "schedules", id), retry: true})
}

// UpdateSchedule changes the fields of the periodic task id of app that u
// sets.
func (c *Client) UpdateSchedule(ctx context.Context, app, id string, u ScheduleUpdate) (*Schedule, error) {
	var body any = u
	if u.Data != nil {
		data := u.Data
		u.Data = nil
		b, err := withData(u, data)
		if err != nil {
			return nil, err
		}
		body = b
	}
	return c.schedule(ctx, call{method: http.MethodPatch, path: appPath(app, "schedules", id), body: body})
}

// DeleteSchedule deletes the periodic task id of app; the tasks it
// enqueued stay.
func (c *Client) DeleteSchedule(ctx context.Context, app, id string) error {
	err := c.do(ctx, call{method: http.MethodDelete, path: appPath(app, "schedules", id)})
	return err
}

// PauseSchedule pauses the periodic task id of app.
func (c *Client) PauseSchedule(ctx context.Context, app, id string) (*Schedule, error) {
	return c.schedule(ctx, call{method: http.MethodPost, path: appPath(app, "schedules", id, "pause"), retry: true})
}

// ResumeSchedule resumes the periodic task id of app; its next slot is the
// first from now.
func (c *Client) ResumeSchedule(ctx context.Context, app, id string) (*Schedule, error) {
	return c.schedule(ctx, call{method: http.MethodPost, path: appPath(app, "schedules", id, "resume"), retry: true})
}

// schedule makes a call that answers a periodic task.
func (c *Client) schedule(ctx context.Context, cl call) (*Schedule, error) {
	s := new(Schedule)
	cl.out = s
	if err := c.do(ctx, cl); err != nil {
		return nil, err
	}
	return s, nil
}

// ---- limits

// SetLimit sets the flow control limit of app's flow key, replacing the
// one it had. It is retried like a read: setting the same limit twice
// leaves it as once.
func (c *Client) SetLimit(ctx context.Context, app, key string, p LimitParams) (*Limit, error) {
	return c.limit(ctx, call{method: http.MethodPut, path: appPath(app, "limits", key), body: p, retry: true})
}

// GetLimit returns the limit of app's flow key, with its running and
// waiting counts.
func (c *Client) GetLimit(ctx context.Context, app, key string) (*Limit, error) {
	return c.limit(ctx, call{method: http.MethodGet, path: appPath(app, "limits", key), retry: true})
}

// Limits returns the limits of app's flow keys.
func (c *Client) Limits(ctx context.Context, app string) ([]*Limit, error) {
	var out struct {
		Data []*Limit `json:"data"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, path: appPath(app, "limits"), retry: true, out: &out}); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// DeleteLimit removes the limit of app's flow key: its tasks start as
// they fall due.
func (c *Client) DeleteLimit(ctx context.Context, app, key string) error {
	return c.do(ctx, call{method: http.MethodDelete, path: appPath(app, "limits", key)})
}

// limit makes a call that answers a limit.
func (c *Client) limit(ctx context.Context, cl call) (*Limit, error) {
	l := new(Limit)
	cl.out = l
	if err := c.do(ctx, cl); err != nil {
		return nil, err
	}
	return l, nil
}
