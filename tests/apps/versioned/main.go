// Command versioned is a weaver-docker test app for rollouts: it reports which
// build of itself is answering.
//
// Two package variables are set by the linker (tests/apps/build.sh builds
// versioned-v1, versioned-v2, versioned-v2crash and versioned-v2deaf):
//
//	go build -ldflags='-X=main.version=v2 -X=main.mode=crash' .
//
// Main owns the HTTP listener "web" and calls Stamp, which runs in its own
// colocation group (so the call is remote under a multi-process deployer):
//
//	GET /         main=<Main's version> stamp=<Stamp's version>\n
//	              (500 and the error text when the call to Stamp fails)
//	GET /healthz  ok\n (does not call Stamp)
//
// mode selects a broken build:
//
//	""       serve normally
//	"crash"  Main's Init logs "crash mode: exiting" and exits with status 3,
//	         so the weavelet hosting Main dies right after starting
//	"deaf"   Main never serves its listener: it logs "deaf mode: not serving"
//	         and blocks until shutdown; TCP connects succeed (kernel backlog)
//	         but no HTTP answer ever comes
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/ServiceWeaver/weaver"
)

// Set with -ldflags=-X=main.version=... and -X=main.mode=...
var (
	version = "dev"
	mode    = ""
)

func main() {
	if err := weaver.Run(context.Background(), serve); err != nil {
		log.Fatal(err)
	}
}

type app struct {
	weaver.Implements[weaver.Main]
	stamp weaver.Ref[Stamp]
	web   weaver.Listener
}

// Init runs when the Main component is constructed, before serve.
func (a *app) Init(ctx context.Context) error {
	if mode == "crash" {
		a.Logger(ctx).Error("crash mode: exiting", "version", version)
		// Also on stderr: log entries are shipped to the deployer
		// asynchronously and could be lost by os.Exit. The short pause gives
		// the batch a chance to leave.
		fmt.Fprintln(os.Stderr, "crash mode: exiting")
		time.Sleep(100 * time.Millisecond)
		os.Exit(3)
	}
	return nil
}

func serve(ctx context.Context, a *app) error {
	logger := a.Logger(ctx)
	addr, proxy := a.web.Addr().String(), a.web.ProxyAddr()
	if mode == "deaf" {
		logger.Warn("deaf mode: not serving", "addr", addr, "proxy", proxy, "version", version)
		<-ctx.Done()
		return nil
	}
	if mode != "" {
		return fmt.Errorf("unknown mode %q", mode)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "ok\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		got, err := a.stamp.Get().Version(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "main=%s stamp=%s\n", version, got)
	})
	logger.Info("versioned ready", "addr", addr, "proxy", proxy, "version", version)
	return http.Serve(a.web, mux)
}

// Stamp runs in its own colocation group and reports the version of the
// binary it runs in.
type Stamp interface {
	Version(ctx context.Context) (string, error)
}

type stamp struct {
	weaver.Implements[Stamp]
}

func (s *stamp) Version(context.Context) (string, error) {
	return version, nil
}
