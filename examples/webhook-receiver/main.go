// Command webhook-receiver is a minimal receiver for task webhooks. It
// verifies each POST with [webhook.Verify] over the raw body, answers
// 204 No Content when the signature holds and 400 Bad Request otherwise, and
// prints each verified delivery to stdout as "webhook-id event_type data".
//
// Run it with the endpoint's signing secret:
//
//	go run ./examples/webhook-receiver -secret whsec_...
//
// or set WEBHOOK_SECRET instead of -secret. It listens on 127.0.0.1:9000
// unless -addr says otherwise.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/taskwheel/tasks/webhook"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "address to listen on")
	secret := flag.String("secret", os.Getenv("WEBHOOK_SECRET"), "endpoint signing secret, whsec_... (default $WEBHOOK_SECRET)")
	flag.Parse()
	if err := webhook.ValidateSecret(*secret); err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Addr:              *addr,
		Handler:           handler(*secret, os.Stdout),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
	}
	log.Printf("listening on %s", *addr)
	log.Fatal(srv.ListenAndServe())
}

// handler verifies and prints deliveries, writing one line per delivery to out.
func handler(secret string, out io.Writer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable or too large body", http.StatusBadRequest)
			return
		}
		// Verify the bytes as received, before decoding them.
		if err := webhook.Verify(secret, r.Header, body); err != nil {
			log.Printf("rejected delivery: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var task struct {
			ID        string          `json:"id"`
			EventType string          `json:"event_type"`
			Data      json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &task); err != nil {
			http.Error(w, "body is not a task", http.StatusBadRequest)
			return
		}
		// Deliveries are at least once: a real receiver deduplicates on webhook-id.
		fmt.Fprintf(out, "%s %s %s\n", r.Header.Get("webhook-id"), task.EventType, task.Data)
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
