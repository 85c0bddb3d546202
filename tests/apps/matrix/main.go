// Command matrix is weaver-docker's version-matrix test app: the same small
// source is built against every supported Service Weaver release (and one
// unsupported one), each copy with that release's own `weaver generate`.
// It only uses API that exists unchanged from weaver v0.19.0 to v0.24.6.
//
// Groups: {Main} owns the HTTP listener "matrix"; {Greeter} runs in its own
// colocation group (so every greeting is a remote call) and has a config
// section (Greeting).
//
// HTTP endpoints on the "matrix" listener (answers end with "\n"):
//
//	GET /healthz           ok
//	GET /hello?name=World  Hello, World! (Main -> Greeter; 400 "missing name")
//	GET /version           weaver=<weaver module version> (from Main's build info)
//	GET /pid               main=<pid> greeter=<pid> (a restarted Greeter replica
//	                       shows a new pid)
//	GET /logs              logged 4 entries (Greeter logs one entry per level)
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"runtime/debug"

	"github.com/ServiceWeaver/weaver"
)

func main() {
	if err := weaver.Run(context.Background(), serve); err != nil {
		log.Fatal(err)
	}
}

type app struct {
	weaver.Implements[weaver.Main]
	greeter weaver.Ref[Greeter]
	matrix  weaver.Listener
}

// weaverVersion is the github.com/ServiceWeaver/weaver version this binary
// was built with ("unknown" without build info).
func weaverVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/ServiceWeaver/weaver" {
				return d.Version
			}
		}
	}
	return "unknown"
}

func serve(ctx context.Context, a *app) error {
	a.Logger(ctx).Info("matrix ready", "addr", a.matrix.Addr().String(), "proxy", a.matrix.ProxyAddr(),
		"weaver", weaverVersion())
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if name == "" {
			http.Error(w, "missing name", http.StatusBadRequest)
			return
		}
		s, err := a.greeter.Get().Greet(r.Context(), name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, s)
	})
	mux.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "weaver=%s\n", weaverVersion())
	})
	mux.HandleFunc("/pid", func(w http.ResponseWriter, r *http.Request) {
		pid, err := a.greeter.Get().Pid(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "main=%d greeter=%d\n", os.Getpid(), pid)
	})
	mux.HandleFunc("/logs", func(w http.ResponseWriter, r *http.Request) {
		n, err := a.greeter.Get().LogAll(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "logged %d entries\n", n)
	})
	return http.Serve(a.matrix, mux)
}

// Greeter runs in its own colocation group.
type Greeter interface {
	Greet(ctx context.Context, name string) (string, error)
	Pid(ctx context.Context) (int, error)
	LogAll(ctx context.Context) (int, error)
}

type greeterConfig struct {
	Greeting string
}

type greeter struct {
	weaver.Implements[Greeter]
	weaver.WithConfig[greeterConfig]
}

func (g *greeter) Init(ctx context.Context) error {
	g.Logger(ctx).Info("greeter ready", "greeting", g.greeting())
	return nil
}

func (g *greeter) greeting() string {
	if s := g.Config().Greeting; s != "" {
		return s
	}
	return "Hello"
}

func (g *greeter) Greet(ctx context.Context, name string) (string, error) {
	g.Logger(ctx).Info("greeting", "name", name)
	return fmt.Sprintf("%s, %s!", g.greeting(), name), nil
}

func (g *greeter) Pid(context.Context) (int, error) { return os.Getpid(), nil }

func (g *greeter) LogAll(ctx context.Context) (int, error) {
	l := g.Logger(ctx)
	l.Debug("debug entry", "n", 1)
	l.Info("info entry", "n", 2)
	l.Warn("warn entry", "n", 3)
	l.Error("error entry", "n", 4, "quoted", "a \"b\"")
	return 4, nil
}
