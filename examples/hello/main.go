// Command hello is the example app of `make demo`.
//
// Main serves HTTP on the listener "hello". Counter is colocated with Main
// (a local call); Reverser runs in its own colocation group (a remote call):
//
//	$ curl 'localhost:12080/hello?name=World'
//	Hello, dlroW! (greeting #1)
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"sync"

	"github.com/ServiceWeaver/weaver"
)

func main() {
	if err := weaver.Run(context.Background(), serve); err != nil {
		log.Fatal(err)
	}
}

type app struct {
	weaver.Implements[weaver.Main]
	reverser weaver.Ref[Reverser]
	counter  weaver.Ref[Counter]
	hello    weaver.Listener
}

func serve(ctx context.Context, a *app) error {
	a.Logger(ctx).Info("hello ready", "addr", a.hello.Addr().String(), "proxy", a.hello.ProxyAddr())
	http.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if name == "" {
			name = "World"
		}
		reversed, err := a.reverser.Get().Reverse(r.Context(), name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		n, err := a.counter.Get().Next(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "Hello, %s! (greeting #%d)\n", reversed, n)
	})
	return http.Serve(a.hello, nil)
}

// Reverser reverses strings. It runs in its own colocation group.
type Reverser interface {
	Reverse(ctx context.Context, s string) (string, error)
}

type reverser struct {
	weaver.Implements[Reverser]
}

func (r *reverser) Reverse(ctx context.Context, s string) (string, error) {
	runes := []rune(s)
	for i, j := 0, len(runes)-1; i < j; i, j = i+1, j-1 {
		runes[i], runes[j] = runes[j], runes[i]
	}
	r.Logger(ctx).Info("reversed", "in", s, "out", string(runes))
	return string(runes), nil
}

// Counter counts greetings. It is colocated with Main (weaver.toml).
type Counter interface {
	Next(ctx context.Context) (int, error)
}

type counter struct {
	weaver.Implements[Counter]
	mu sync.Mutex
	n  int
}

func (c *counter) Next(context.Context) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.n, nil
}
