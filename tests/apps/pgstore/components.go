package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ServiceWeaver/weaver"
	"github.com/lib/pq"
)

// Rows is a key/value table "kv" in the PostgreSQL database named by the
// "dsn" of its weaver.toml section. It runs in its own group.
type Rows interface {
	// Put inserts or replaces k's value.
	Put(ctx context.Context, k, v string) error
	// Get returns k's value and whether k exists.
	Get(ctx context.Context, k string) (string, bool, error)
	// Count returns the number of rows.
	Count(ctx context.Context) (int, error)
	// Ping runs "SELECT 1" (a cheap round trip for benchmarks).
	Ping(ctx context.Context) error
	// PingLoop runs n "SELECT 1" queries over conc goroutines, each running
	// n/conc of them one after the other on the pool, and returns their
	// latency figures (the database round trip as the component sees it).
	PingLoop(ctx context.Context, n int, conc int) (PingStats, error)
}

// PingStats are the figures of one PingLoop: latencies of single queries in
// microseconds and the wall time of the whole loop (throughput = N/Elapsed).
type PingStats struct {
	weaver.AutoMarshal
	N       int           // queries run (n rounded down to a multiple of conc)
	Conc    int           // goroutines
	P50us   float64       // median latency
	P99us   float64       // 99th percentile latency
	MeanUs  float64       // mean latency
	Elapsed time.Duration // wall time of the loop
}

type rowsConfig struct {
	// DSN is a lib/pq connection string, e.g.
	// "postgres://postgres:pw@localhost:5432/postgres?sslmode=disable".
	DSN string `toml:"dsn"`
	// StrictInit makes Init fail when the database cannot be reached. Off by
	// default: a failing Init leaves the component never ready, so its callers
	// (here Main, while it is being constructed) wait forever instead of
	// seeing the error. Without it, Init logs the error and every method
	// retries the connection and returns the error until it succeeds.
	StrictInit bool `toml:"strict_init"`
}

const dbTimeout = 5 * time.Second

type rows struct {
	weaver.Implements[Rows]
	weaver.WithConfig[rowsConfig]

	db *sql.DB

	mu    sync.Mutex // serializes prepare
	ready bool       // database reached and table created
}

func (r *rows) Init(ctx context.Context) error {
	dsn := r.Config().DSN
	if dsn == "" {
		return errors.New(`rows: no dsn in the ["example.com/pgstore/Rows"] config section`)
	}
	conn, err := pq.NewConnector(dsn)
	if err != nil {
		return fmt.Errorf("rows: %w", err)
	}
	r.db = sql.OpenDB(conn)
	// Enough connections for a benchmark, well under PostgreSQL's default
	// max_connections (100), and kept open between requests.
	r.db.SetMaxOpenConns(16)
	r.db.SetMaxIdleConns(16)
	if _, err := r.prepare(ctx); err != nil {
		if r.Config().StrictInit {
			return err
		}
		r.Logger(ctx).Error("database unavailable; will retry on each call", "err", err)
		return nil
	}
	r.Logger(ctx).Info("rows ready")
	return nil
}

// prepare makes sure the database answers and the table exists, and returns
// the database handle. Once it succeeded it is a no-op.
func (r *rows) prepare(ctx context.Context) (*sql.DB, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ready {
		return r.db, nil
	}
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	if err := r.db.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("rows: %w", err)
	}
	if _, err := r.db.ExecContext(ctx,
		`CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v text)`); err != nil {
		return nil, fmt.Errorf("rows: %w", err)
	}
	r.ready = true
	return r.db, nil
}

func (r *rows) Put(ctx context.Context, k, v string) error {
	db, err := r.prepare(ctx)
	if err != nil {
		return err
	}
	_, err = db.ExecContext(ctx,
		`INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v`, k, v)
	if err != nil {
		return fmt.Errorf("rows: %w", err)
	}
	return nil
}

func (r *rows) Get(ctx context.Context, k string) (string, bool, error) {
	db, err := r.prepare(ctx)
	if err != nil {
		return "", false, err
	}
	var v sql.NullString
	err = db.QueryRowContext(ctx, `SELECT v FROM kv WHERE k = $1`, k).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("rows: %w", err)
	}
	return v.String, true, nil
}

func (r *rows) Count(ctx context.Context) (int, error) {
	db, err := r.prepare(ctx)
	if err != nil {
		return 0, err
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM kv`).Scan(&n); err != nil {
		return 0, fmt.Errorf("rows: %w", err)
	}
	return n, nil
}

func (r *rows) Ping(ctx context.Context) error {
	db, err := r.prepare(ctx)
	if err != nil {
		return err
	}
	var one int
	if err := db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("rows: %w", err)
	}
	return nil
}

// maxPingConc bounds PingLoop's goroutines (and so its open connections).
const maxPingConc = 64

func (r *rows) PingLoop(ctx context.Context, n int, conc int) (PingStats, error) {
	if conc < 1 || conc > maxPingConc {
		return PingStats{}, fmt.Errorf("rows: concurrency %d not in 1..%d", conc, maxPingConc)
	}
	if n < conc || n > 10_000_000 {
		return PingStats{}, fmt.Errorf("rows: n %d not in %d..10000000", n, conc)
	}
	db, err := r.prepare(ctx)
	if err != nil {
		return PingStats{}, err
	}
	if conc > 16 {
		// Init sized the pool for 16; grow it so that no goroutine waits
		// for a connection (the latency is the database round trip only).
		r.db.SetMaxOpenConns(conc)
		r.db.SetMaxIdleConns(conc)
	}
	per := n / conc
	lat := make([]time.Duration, per*conc)
	errs := make([]error, conc)
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			mine := lat[g*per : (g+1)*per]
			var one int
			for i := range mine {
				t := time.Now()
				if err := db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
					errs[g] = fmt.Errorf("rows: %w", err)
					return
				}
				mine[i] = time.Since(t)
			}
		}(g)
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return PingStats{}, err
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	return PingStats{
		N:       len(lat),
		Conc:    conc,
		P50us:   us(pct(lat, 0.50)),
		P99us:   us(pct(lat, 0.99)),
		MeanUs:  us(sum) / float64(len(lat)),
		Elapsed: elapsed,
	}, nil
}

// pct returns the q-quantile of the sorted xs, interpolated linearly between
// the two nearest ranks (like bench/bench.py).
func pct(xs []time.Duration, q float64) time.Duration {
	k := float64(len(xs)-1) * q
	lo := int(k)
	hi := lo + 1
	if hi > len(xs)-1 {
		hi = len(xs) - 1
	}
	return xs[lo] + time.Duration(float64(xs[hi]-xs[lo])*(k-float64(lo)))
}

// Files looks at the environment, file system and network of its own
// weavelet (its own container under weaver-docker). It runs in its own group.
type Files interface {
	// Env returns the value of the environment variable name ("" if unset).
	Env(ctx context.Context, name string) (string, error)
	// Read returns the contents of the file at path.
	Read(ctx context.Context, path string) (string, error)
	// Write writes v to the file at path (mode 0644; the directory must exist).
	Write(ctx context.Context, path, v string) error
	// Dial connects to addr over TCP, sends "ping\n" and returns the first
	// line of the answer, trimmed.
	Dial(ctx context.Context, addr string) (string, error)
	// Resolve returns the addresses of host.
	Resolve(ctx context.Context, host string) ([]string, error)
}

type files struct {
	weaver.Implements[Files]
}

func (f *files) Env(_ context.Context, name string) (string, error) {
	return os.Getenv(name), nil
}

func (f *files) Read(_ context.Context, path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return string(data), nil
}

func (f *files) Write(_ context.Context, path, v string) error {
	return os.WriteFile(path, []byte(v), 0o644)
}

func (f *files) Dial(ctx context.Context, addr string) (string, error) {
	const timeout = 5 * time.Second
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("dial %s: reading the answer: %w", addr, err)
	}
	return strings.TrimSpace(line), nil
}

func (f *files) Resolve(ctx context.Context, host string) ([]string, error) {
	return net.DefaultResolver.LookupHost(ctx, host)
}

// Hog allocates memory and keeps it, to push its weavelet into a memory
// limit. It runs in its own group.
type Hog interface {
	// Alloc allocates mb MiB more, writes to every page of it, and returns
	// the total MiB held.
	Alloc(ctx context.Context, mb int) (int, error)
}

var (
	heldMu sync.Mutex
	held   [][]byte
	heldMB int
)

type hog struct {
	weaver.Implements[Hog]
}

func (h *hog) Alloc(ctx context.Context, mb int) (int, error) {
	if mb < 0 {
		return 0, fmt.Errorf("hog: negative size %d MiB", mb)
	}
	b := make([]byte, mb<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	heldMu.Lock()
	defer heldMu.Unlock()
	held = append(held, b)
	heldMB += mb
	h.Logger(ctx).Info("allocated", "mb", mb, "total_mb", heldMB)
	return heldMB, nil
}
