// Command wide is a weaver-docker benchmark app: Main references 50
// components (components.go, written by gen.sh), each in its own colocation
// group, and calls every one of them once at startup, so a deployer has to
// start 51 groups. The HTTP listener "wide" answers:
//
//	GET /        "50 ok" once all 50 components replied (the request waits
//	             for that, up to its own context; on failure: 500 and the
//	             first error)
//	GET /healthz "ok"
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"sync"
	"time"

	"github.com/ServiceWeaver/weaver"
)

func main() {
	if err := weaver.Run(context.Background(), serve); err != nil {
		log.Fatal(err)
	}
}

// app (the main component, with the listener "wide" and a weaver.Ref to every
// component) is in components.go.

func serve(ctx context.Context, a *app) error {
	a.Logger(ctx).Info("wide ready", "addr", a.wide.Addr().String(), "proxy", a.wide.ProxyAddr(), "components", numComponents)
	done := make(chan struct{})
	var firstErr error
	go func() {
		defer close(done)
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i, ping := range a.pingers() {
			wg.Add(1)
			go func(i int, ping func(context.Context) (int, error)) {
				defer wg.Done()
				got, err := ping(ctx)
				if err == nil && got != i {
					err = fmt.Errorf("component %d answered %d", i, got)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}(i, ping)
		}
		wg.Wait()
		a.Logger(ctx).Info("all components replied", "components", numComponents,
			"elapsed", time.Since(start).String(), "err", fmt.Sprint(firstErr))
	}()

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-done:
		case <-r.Context().Done():
			http.Error(w, "waiting for components: "+r.Context().Err().Error(), http.StatusServiceUnavailable)
			return
		}
		if firstErr != nil {
			http.Error(w, firstErr.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%d ok\n", numComponents)
	})
	return http.Serve(a.wide, weaver.InstrumentHandler("wide", mux))
}
