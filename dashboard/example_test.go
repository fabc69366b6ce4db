package dashboard_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/dashboard"
)

// The dashboard, mounted beside the API with the same keys: a browser that
// opens it is sent to its login page, where the user pastes an API key.
func ExampleNew() {
	eng, err := tasks.NewEngine(tasks.NewMemoryStore(), nil)
	if err != nil {
		log.Fatal(err)
	}
	keys := map[string][]string{"tw_key-of-app_1": {"app_1"}}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", http.StripPrefix("/api/v1", eng.Handler(&tasks.HandlerConfig{Keys: keys})))
	mux.Handle("/ui/", http.StripPrefix("/ui", dashboard.New(eng, &dashboard.Config{Keys: keys})))

	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/ui/")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Request.URL.Path)
	// Output: 200 /ui/login
}
