// Command pgstore is a weaver-docker test app that reaches outside its
// container: a PostgreSQL database (normally on the host), environment
// variables, files (secrets, bind mounts, named volumes), other hosts on extra
// networks, and memory (to hit a container memory limit).
//
// Groups (each component is in its own group):
//
//	Main    owns the HTTP listener "store"
//	Rows    a key/value table "kv" in PostgreSQL (config: dsn)
//	Files   environment, files, TCP dial and name resolution in its weavelet
//	Hog     allocates and keeps memory on request
//
// HTTP endpoints on the "store" listener (answers end with "\n"; failures
// answer 500 with the error text):
//
//	GET /healthz                 ok
//	GET|POST /put?k=K&v=V        put K
//	GET /get?k=K                 V (404 "no K")
//	GET /count                   number of rows
//	GET /ping                    pong (SELECT 1)
//	GET /pingloop?n=N&c=C        n=N c=C p50_us=.. p99_us=.. mean_us=.. qps=..
//	                             (N SELECT 1 in Rows over C goroutines)
//	GET /env?name=X              value of X in the Files weavelet
//	GET /read?path=P             contents of P
//	GET /write?path=P&v=V        wrote P
//	GET /dial?addr=H:P           the line H:P answers to "ping\n"
//	GET /resolve?host=H          addresses of H, joined by ","
//	GET /alloc?mb=N              holding T MiB (T: total held by Hog)
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"strings"

	"github.com/ServiceWeaver/weaver"
)

func main() {
	if err := weaver.Run(context.Background(), serve); err != nil {
		log.Fatal(err)
	}
}

type app struct {
	weaver.Implements[weaver.Main]
	rows  weaver.Ref[Rows]
	files weaver.Ref[Files]
	hog   weaver.Ref[Hog]
	store weaver.Listener
}

// fail answers 500 with err's text. An error returned by a remote component
// arrives as an errors.Join of its whole wrap chain (weaver's codegen flattens
// it), whose text has one line per link; answer only the outermost one, which
// already contains the others.
func fail(w http.ResponseWriter, err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		if errs := j.Unwrap(); len(errs) > 0 && errs[0] != nil {
			err = errs[0]
		}
	}
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

// param returns the non-empty request parameter name, or answers 400
// "missing <name>" and returns false.
func param(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	v := r.FormValue(name)
	if v == "" {
		http.Error(w, "missing "+name, http.StatusBadRequest)
		return "", false
	}
	return v, true
}

func serve(ctx context.Context, a *app) error {
	a.Logger(ctx).Info("pgstore ready", "addr", a.store.Addr().String(), "proxy", a.store.ProxyAddr())
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})

	// Rows.
	mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
			return
		}
		k, ok := param(w, r, "k")
		if !ok {
			return
		}
		if err := a.rows.Get().Put(r.Context(), k, r.FormValue("v")); err != nil {
			fail(w, err)
			return
		}
		fmt.Fprintf(w, "put %s\n", k)
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		k, ok := param(w, r, "k")
		if !ok {
			return
		}
		v, found, err := a.rows.Get().Get(r.Context(), k)
		if err != nil {
			fail(w, err)
			return
		}
		if !found {
			http.Error(w, "no "+k, http.StatusNotFound)
			return
		}
		fmt.Fprintln(w, v)
	})
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		n, err := a.rows.Get().Count(r.Context())
		if err != nil {
			fail(w, err)
			return
		}
		fmt.Fprintln(w, n)
	})
	mux.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) {
		if err := a.rows.Get().Ping(r.Context()); err != nil {
			fail(w, err)
			return
		}
		fmt.Fprintln(w, "pong")
	})

	mux.HandleFunc("/pingloop", func(w http.ResponseWriter, r *http.Request) {
		n, err1 := strconv.Atoi(r.FormValue("n"))
		c, err2 := strconv.Atoi(r.FormValue("c"))
		if err1 != nil || err2 != nil {
			http.Error(w, "want n=N&c=C", http.StatusBadRequest)
			return
		}
		s, err := a.rows.Get().PingLoop(r.Context(), n, c)
		if err != nil {
			fail(w, err)
			return
		}
		fmt.Fprintf(w, "n=%d c=%d p50_us=%.1f p99_us=%.1f mean_us=%.1f qps=%.0f\n",
			s.N, s.Conc, s.P50us, s.P99us, s.MeanUs, float64(s.N)/s.Elapsed.Seconds())
	})

	// Files.
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		name, ok := param(w, r, "name")
		if !ok {
			return
		}
		v, err := a.files.Get().Env(r.Context(), name)
		if err != nil {
			fail(w, err)
			return
		}
		fmt.Fprintln(w, v)
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		path, ok := param(w, r, "path")
		if !ok {
			return
		}
		data, err := a.files.Get().Read(r.Context(), path)
		if err != nil {
			fail(w, err)
			return
		}
		if !strings.HasSuffix(data, "\n") {
			data += "\n"
		}
		fmt.Fprint(w, data)
	})
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		path, ok := param(w, r, "path")
		if !ok {
			return
		}
		if err := a.files.Get().Write(r.Context(), path, r.FormValue("v")); err != nil {
			fail(w, err)
			return
		}
		fmt.Fprintf(w, "wrote %s\n", path)
	})
	mux.HandleFunc("/dial", func(w http.ResponseWriter, r *http.Request) {
		addr, ok := param(w, r, "addr")
		if !ok {
			return
		}
		line, err := a.files.Get().Dial(r.Context(), addr)
		if err != nil {
			fail(w, err)
			return
		}
		fmt.Fprintln(w, line)
	})
	mux.HandleFunc("/resolve", func(w http.ResponseWriter, r *http.Request) {
		host, ok := param(w, r, "host")
		if !ok {
			return
		}
		addrs, err := a.files.Get().Resolve(r.Context(), host)
		if err != nil {
			fail(w, err)
			return
		}
		fmt.Fprintln(w, strings.Join(addrs, ","))
	})

	// Hog.
	mux.HandleFunc("/alloc", func(w http.ResponseWriter, r *http.Request) {
		s, ok := param(w, r, "mb")
		if !ok {
			return
		}
		mb, err := strconv.Atoi(s)
		if err != nil || mb < 0 {
			http.Error(w, "bad mb "+strconv.Quote(s), http.StatusBadRequest)
			return
		}
		total, err := a.hog.Get().Alloc(r.Context(), mb)
		if err != nil {
			fail(w, err)
			return
		}
		fmt.Fprintf(w, "holding %d MiB\n", total)
	})
	return http.Serve(a.store, weaver.InstrumentHandler("store", mux))
}
