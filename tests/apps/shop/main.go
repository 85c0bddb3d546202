// Command shop is the main integration-test app of weaver-docker: a small
// Service Weaver application with several colocation groups, a routed
// component, a config section, logs at every level and a component that
// panics on request.
//
// Groups (weaver.toml):
//
//	Main + Pricer   Main owns the HTTP listener "shop"; Pricer is colocated
//	Cart            own group, configured by weaver.toml, calls Inventory
//	Inventory       own group, routed by item (weaver.WithRouter)
//	Crasher         own group, panics when asked to
//
// HTTP endpoints on the "shop" listener (answers end with "\n"):
//
//	GET /healthz           ok
//	GET /buy?item=apple    bought apple: 1 in cart (stock 9)
//	GET /price?item=apple  apple costs 35
//	GET /config            store=weaver-docker shop max=100
//	GET /whoami            main=<weavelet id> cart=<weavelet id>
//	GET /logs              logged 4 entries
//	GET /flood?n=N         logged N lines (N info lines from Main, at full speed)
//	                       (metrics: shop_buys counts /buy, shop_flood_lines and
//	                       shop_last_flood record n)
//	GET /spin?ms=N         spun R (N ms of CPU in burnCPU, for profiles)
//	GET /hoard?mb=N        hoarding M MiB (N MiB kept by hoardMemory, for heap profiles)
//	GET /panic             Crasher panics; its weavelet dies
//	GET /callloop?n=N      n=N p50_us=.. p99_us=.. mean_us=.. (N Cart.Whoami calls
//	                       from Main, timed in Main: one cross-group component call)
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/ServiceWeaver/weaver"
	"github.com/ServiceWeaver/weaver/metrics"
	"github.com/ServiceWeaver/weaver/runtime"
)

// The app's own metrics (the metrics tests count them): a counter, a gauge and a histogram.
var (
	buys       = metrics.NewCounter("shop_buys", "Items bought through /buy")
	lastFlood  = metrics.NewGauge("shop_last_flood", "Lines asked for by the last /flood")
	floodLines = metrics.NewHistogram("shop_flood_lines", "Lines logged per /flood request",
		[]float64{10, 100, 1000, 10000, 100000})
)

func main() {
	if err := weaver.Run(context.Background(), serve); err != nil {
		log.Fatal(err)
	}
}

type app struct {
	weaver.Implements[weaver.Main]
	pricer  weaver.Ref[Pricer]
	cart    weaver.Ref[Cart]
	crasher weaver.Ref[Crasher]
	shop    weaver.Listener
}

// burnCPU spins for d and returns how many rounds it did.
//
//go:noinline
func burnCPU(d time.Duration) uint64 {
	var x, n uint64 = 1, 0
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
		for i := 0; i < 1000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	return n + x%2
}

var hoard [][]byte

// hoardMemory allocates mb MiB and keeps them; returns the MiB kept in all.
//
//go:noinline
func hoardMemory(mb int) int {
	for i := 0; i < mb; i++ {
		b := make([]byte, 1<<20)
		for j := range b {
			b[j] = byte(j)
		}
		hoard = append(hoard, b)
	}
	return len(hoard)
}

// weaveletID returns the id the deployer gave this weavelet in WEAVELET_ARGS,
// or "single" when the binary runs as a single process.
func weaveletID(ctx context.Context) string {
	b, err := runtime.GetBootstrap(ctx)
	if err != nil || !b.Exists() {
		return "single"
	}
	return b.Args.Id
}

func serve(ctx context.Context, a *app) error {
	a.Logger(ctx).Info("shop ready", "addr", a.shop.Addr().String(), "proxy", a.shop.ProxyAddr())
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/buy", func(w http.ResponseWriter, r *http.Request) {
		item := r.URL.Query().Get("item")
		if item == "" {
			http.Error(w, "missing item", http.StatusBadRequest)
			return
		}
		// A deadline (and, from weaver v0.24.4 on, a metadata entry) so the
		// data-plane request header carries its optional parts.
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		inCart, stock, err := a.cart.Get().Add(withMetadata(ctx), item)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		buys.Inc()
		fmt.Fprintf(w, "bought %s: %d in cart (stock %d)\n", item, inCart, stock)
	})
	mux.HandleFunc("/price", func(w http.ResponseWriter, r *http.Request) {
		item := r.URL.Query().Get("item")
		cents, err := a.pricer.Get().Price(r.Context(), item)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%s costs %d\n", item, cents)
	})
	mux.HandleFunc("/config", func(w http.ResponseWriter, r *http.Request) {
		store, max, err := a.cart.Get().Settings(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "store=%s max=%d\n", store, max)
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		id, err := a.cart.Get().Whoami(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "main=%s cart=%s\n", weaveletID(r.Context()), id)
	})
	mux.HandleFunc("/logs", func(w http.ResponseWriter, r *http.Request) {
		n, err := a.cart.Get().LogAll(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "logged %d entries\n", n)
	})
	// /flood?n=N: N log lines from Main as fast as it can (the paused-terminal tests).
	mux.HandleFunc("/flood", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 0 {
			http.Error(w, "n must be a count", http.StatusBadRequest)
			return
		}
		logger := a.Logger(r.Context())
		for i := 0; i < n; i++ {
			logger.Info("flood", "i", i)
		}
		lastFlood.Set(float64(n))
		floodLines.Put(float64(n))
		fmt.Fprintf(w, "logged %d lines\n", n)
	})
	// /spin?ms=N: N ms of CPU in burnCPU (the profile test's hot function).
	mux.HandleFunc("/spin", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 1 || ms > 60000 {
			http.Error(w, "want ms=1..60000", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "spun %d\n", burnCPU(time.Duration(ms)*time.Millisecond))
	})
	// /hoard?mb=N: N MiB allocated by hoardMemory and kept (the heap profile test).
	mux.HandleFunc("/hoard", func(w http.ResponseWriter, r *http.Request) {
		mb, err := strconv.Atoi(r.URL.Query().Get("mb"))
		if err != nil || mb < 1 || mb > 256 {
			http.Error(w, "want mb=1..256", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "hoarding %d MiB\n", hoardMemory(mb))
	})
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) {
		a.Logger(r.Context()).Warn("asking Crasher to panic")
		err := a.crasher.Get().Crash(r.Context(), "requested by /panic")
		if err == nil {
			err = errors.New("crasher did not crash")
		}
		http.Error(w, err.Error(), http.StatusBadGateway)
	})
	mux.HandleFunc("/callloop", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 1 || n > 1000000 {
			http.Error(w, "want n=1..1000000", http.StatusBadRequest)
			return
		}
		us := make([]float64, n)
		sum := 0.0
		for i := range us {
			t := time.Now()
			if _, err := a.cart.Get().Whoami(r.Context()); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			us[i] = float64(time.Since(t).Nanoseconds()) / 1e3
			sum += us[i]
		}
		sort.Float64s(us)
		fmt.Fprintf(w, "n=%d p50_us=%.1f p99_us=%.1f mean_us=%.1f\n", n, us[n/2], us[n*99/100],
			sum/float64(n))
	})
	return http.Serve(a.shop, weaver.InstrumentHandler("shop", mux))
}
