package dashboard_test

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/taskwheel/tasks"
)

// TestUI_EndpointLimits: the endpoints page shows each endpoint's
// rate_limit and max_in_flight, and nothing for an endpoint without.
func TestUI_EndpointLimits(t *testing.T) {
	t.Parallel()
	d := newDash(t, tasks.NewMemoryStore(), dashOpts{})
	d.login(keyApp1)
	both := createEndpoint(t, d.e, tasks.NewEndpoint{URL: "https://both.example.com/", RateLimit: 2.5, MaxInFlight: 3})
	rate := createEndpoint(t, d.e, tasks.NewEndpoint{URL: "https://rate.example.com/", RateLimit: 20})
	none := createEndpoint(t, d.e, tasks.NewEndpoint{URL: "https://none.example.com/"})
	page := d.get("/apps/app_1/endpoints")
	d.wantStatus("GET endpoints", page, http.StatusOK)
	rowOf := func(id string) string {
		return regexp.MustCompile(`(?s)<tr id="ep-` + id + `">.*?</tr>`).FindString(page.body)
	}
	wantContains(t, "the row of the endpoint with both limits", rowOf(both.ID),
		`<span class="ep-rate-limit">2.5 a second</span>`, `<span class="ep-max-in-flight">3 at once</span>`)
	wantContains(t, "the row of the endpoint with a rate limit", rowOf(rate.ID), `<span class="ep-rate-limit">20 a second</span>`)
	wantNotContains(t, "the row of the endpoint with a rate limit", rowOf(rate.ID), "ep-max-in-flight")
	wantNotContains(t, "the row of the endpoint without limits", rowOf(none.ID), "Limits:")
}
