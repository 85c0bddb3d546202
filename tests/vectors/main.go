// Command wdvectors prints weaver-docker's golden vectors: the exact bytes that
// Service Weaver's own Go code writes for the frames and messages the C
// deployer produces and consumes.
//
// It imports weaver's internal packages, so it only builds inside a copy of
// the weaver module: tests/vectors/regen.sh copies the module from the Go
// module cache into build/go/vectors-mod*/, adds this file as the package
// wdvectors in that copy and runs it once against weaver v0.24.6 and once
// (with -old and the build tag weaver_v0243) against weaver v0.24.3.
//
// Every RPC frame is recorded on a fresh in-memory connection (net.Pipe)
// between weaver's own client (call.Connect + the generated client stub of a
// control component) and weaver's own server (call.ServeOn + the generated
// server stub, backed by a fixed fake implementation), so request ids start
// at 1 and nothing depends on time or randomness: no deadlines, fixed trace
// ids, maps with at most one entry, errors made with errors.New.
//
// Output (stdout): for each vector one "# description" line, then
// "<name> <lowercase hex>".
package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"

	_ "github.com/ServiceWeaver/weaver" // registers the control components
	"github.com/ServiceWeaver/weaver/internal/control"
	"github.com/ServiceWeaver/weaver/internal/net/call"
	"github.com/ServiceWeaver/weaver/internal/proto"
	"github.com/ServiceWeaver/weaver/runtime/codegen"
	"github.com/ServiceWeaver/weaver/runtime/protos"
	"go.opentelemetry.io/otel/trace"
	gproto "google.golang.org/protobuf/proto"
)

const (
	deployerControlName = "github.com/ServiceWeaver/weaver/deployerControl"
	weaveletControlName = "github.com/ServiceWeaver/weaver/weaveletControl"
)

var (
	old    = flag.Bool("old", false, "the module is v0.23.0-beta...v0.24.3 (49-byte request header): print only frame vectors, named v0243.*")
	prefix string
)

func main() {
	flag.Parse()
	if *old {
		prefix = "v0243."
	}
	if !*old {
		printKeys()
		printWeaveletArgs()
	}
	printFrames()
	if err := out.Flush(); err != nil {
		fatal(err)
	}
}

// ---------------------------------------------------------------- output

type writer struct {
	w     io.Writer
	err   error
	names map[string]bool
}

var out = &writer{w: os.Stdout, names: map[string]bool{}}

func (o *writer) vector(name, desc string, b []byte) {
	name = prefix + name
	if o.names[name] {
		fatal(fmt.Errorf("duplicate vector %s", name))
	}
	if len(b) == 0 {
		fatal(fmt.Errorf("empty vector %s", name))
	}
	o.names[name] = true
	if o.err == nil {
		_, o.err = fmt.Fprintf(o.w, "# %s\n%s %s\n", desc, name, hex.EncodeToString(b))
	}
}

func (o *writer) Flush() error { return o.err }

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "wdvectors:", err)
	os.Exit(1)
}

// ---------------------------------------------------------------- method keys

func printKeys() {
	for _, c := range []struct {
		component string
		methods   []string
	}{
		{deployerControlName, []string{"ActivateComponent", "ExportListener", "GetListenerAddress",
			"GetSelfCertificate", "HandleTraceSpans", "LogBatch", "VerifyClientCertificate",
			"VerifyServerCertificate"}},
		{weaveletControlName, []string{"GetHealth", "GetLoad", "GetMetrics", "GetProfile",
			"InitWeavelet", "UpdateComponents", "UpdateRoutingInfo"}},
	} {
		short := c.component[strings.LastIndex(c.component, "/")+1:]
		for _, m := range c.methods {
			k := call.MakeMethodKey(c.component, m)
			out.vector("key."+short+"."+m, "call.MakeMethodKey("+c.component+", "+m+")", k[:])
		}
	}
}

// ---------------------------------------------------------------- WEAVELET_ARGS

func printWeaveletArgs() {
	args := &protos.WeaveletArgs{
		App:             "shop",
		DeploymentId:    "dep-1",
		Id:              "w-1",
		RunMain:         true,
		InternalAddress: "10.0.0.7:0",
		Redirects: []*protos.WeaveletArgs_Redirect{{
			Component: deployerControlName,
			Target:    deployerControlName,
			Address:   "unix:///run/wv/d.sock",
		}},
		ControlSocket: "/run/wv/w1.sock",
	}
	const desc = `WeaveletArgs{app: "shop", deployment_id: "dep-1", id: "w-1", run_main: true, ` +
		`internal_address: "10.0.0.7:0", redirects: [{component = target = deployerControl, ` +
		`address: "unix:///run/wv/d.sock"}], control_socket: "/run/wv/w1.sock"}`
	pb, err := gproto.Marshal(args)
	if err != nil {
		fatal(err)
	}
	out.vector("weavelet_args.pb", desc+": protobuf", pb)
	env, err := proto.ToEnv(args)
	if err != nil {
		fatal(err)
	}
	out.vector("weavelet_args.env", desc+": the WEAVELET_ARGS value (internal/proto.ToEnv, base64 text; the hex is of its ASCII)", []byte(env))
}

// ---------------------------------------------------------------- frames

// Values returned by the fake control components.
var (
	errDeferred = errors.New("activation deferred by test harness")
	errNoShop   = errors.New("no listener shop")
)

type fakeDeployer struct {
	activateErr error
}

var _ control.DeployerControl = (*fakeDeployer)(nil)

func (d *fakeDeployer) LogBatch(context.Context, *protos.LogEntryBatch) error { return nil }
func (d *fakeDeployer) HandleTraceSpans(context.Context, *protos.TraceSpans) error {
	return nil
}
func (d *fakeDeployer) ActivateComponent(context.Context, *protos.ActivateComponentRequest) (*protos.ActivateComponentReply, error) {
	if d.activateErr != nil {
		return nil, d.activateErr
	}
	return &protos.ActivateComponentReply{}, nil
}
func (d *fakeDeployer) GetListenerAddress(_ context.Context, req *protos.GetListenerAddressRequest) (*protos.GetListenerAddressReply, error) {
	return &protos.GetListenerAddressReply{Address: "localhost:0"}, nil
}
func (d *fakeDeployer) ExportListener(_ context.Context, req *protos.ExportListenerRequest) (*protos.ExportListenerReply, error) {
	if req.Listener != "shop" {
		return nil, errNoShop
	}
	return &protos.ExportListenerReply{ProxyAddress: req.Address}, nil
}
func (d *fakeDeployer) GetSelfCertificate(context.Context, *protos.GetSelfCertificateRequest) (*protos.GetSelfCertificateReply, error) {
	return &protos.GetSelfCertificateReply{}, nil
}
func (d *fakeDeployer) VerifyClientCertificate(context.Context, *protos.VerifyClientCertificateRequest) (*protos.VerifyClientCertificateReply, error) {
	return &protos.VerifyClientCertificateReply{}, nil
}
func (d *fakeDeployer) VerifyServerCertificate(context.Context, *protos.VerifyServerCertificateRequest) (*protos.VerifyServerCertificateReply, error) {
	return &protos.VerifyServerCertificateReply{}, nil
}

type fakeWeavelet struct{}

var _ control.WeaveletControl = fakeWeavelet{}

func (fakeWeavelet) InitWeavelet(context.Context, *protos.InitWeaveletRequest) (*protos.InitWeaveletReply, error) {
	return &protos.InitWeaveletReply{
		DialAddr: "tcp://127.0.0.1:40917",
		Version:  &protos.SemVer{Major: 0, Minor: 24, Patch: 0},
	}, nil
}
func (fakeWeavelet) UpdateComponents(context.Context, *protos.UpdateComponentsRequest) (*protos.UpdateComponentsReply, error) {
	return &protos.UpdateComponentsReply{}, nil
}
func (fakeWeavelet) UpdateRoutingInfo(_ context.Context, req *protos.UpdateRoutingInfoRequest) (*protos.UpdateRoutingInfoReply, error) {
	if req.RoutingInfo.GetLocal() {
		// What a real weavelet answers to a local update: nil reply, nil error.
		return nil, nil
	}
	return &protos.UpdateRoutingInfoReply{}, nil
}
func (fakeWeavelet) GetHealth(context.Context, *protos.GetHealthRequest) (*protos.GetHealthReply, error) {
	return &protos.GetHealthReply{
		Status:            protos.HealthStatus_HEALTHY,
		HealthyComponents: []string{"example.com/shop/Cart"},
	}, nil
}
func (fakeWeavelet) GetLoad(context.Context, *protos.GetLoadRequest) (*protos.GetLoadReply, error) {
	return &protos.GetLoadReply{}, nil
}
func (fakeWeavelet) GetMetrics(context.Context, *protos.GetMetricsRequest) (*protos.GetMetricsReply, error) {
	return &protos.GetMetricsReply{}, nil
}
func (fakeWeavelet) GetProfile(context.Context, *protos.GetProfileRequest) (*protos.GetProfileReply, error) {
	return &protos.GetProfileReply{}, nil
}

// exchange is what one call wrote in each direction.
type exchange struct {
	sent [][]byte // client to server: version message, request
	recv [][]byte // server to client: version message, response
}

func (e exchange) request() []byte  { return e.sent[len(e.sent)-1] }
func (e exchange) response() []byte { return e.recv[len(e.recv)-1] }

// recorder keeps every byte written by the client and read back from the
// server on one connection.
type recorder struct {
	net.Conn
	mu   sync.Mutex
	sent []byte
	recv []byte
}

func (r *recorder) Write(b []byte) (int, error) {
	n, err := r.Conn.Write(b)
	r.mu.Lock()
	r.sent = append(r.sent, b[:n]...)
	r.mu.Unlock()
	return n, err
}

func (r *recorder) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	r.mu.Lock()
	r.recv = append(r.recv, b[:n]...)
	r.mu.Unlock()
	return n, err
}

// pipeEndpoint is a call.Endpoint that hands out one end of a net.Pipe once.
type pipeEndpoint struct {
	mu   sync.Mutex
	conn net.Conn
}

func (p *pipeEndpoint) Dial(context.Context) (net.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		return nil, errors.New("wdvectors: the pipe was already used")
	}
	c := p.conn
	p.conn = nil
	return c, nil
}

func (p *pipeEndpoint) Address() string { return "pipe" }

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// session makes one call on a fresh connection. The server serves the
// component named server with impl; the client uses the generated client stub
// of the component named client (normally the same name). do gets the client
// stub and a context; its error is returned.
func session(server string, impl any, client string, ctx context.Context, do func(context.Context, any) error) (exchange, error) {
	hmap := call.NewHandlerMap()
	if err := hmap.AddHandlers(server, impl); err != nil {
		fatal(err)
	}
	srvEnd, cliEnd := net.Pipe()
	rec := &recorder{Conn: cliEnd}
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go call.ServeOn(sctx, srvEnd, hmap, call.ServerOptions{Logger: discard})

	conn, err := call.Connect(sctx, call.NewConstantResolver(&pipeEndpoint{conn: rec}),
		call.ClientOptions{Logger: discard})
	if err != nil {
		fatal(err)
	}
	reg, ok := codegen.Find(client)
	if !ok {
		fatal(fmt.Errorf("component %s not registered", client))
	}
	stub := call.NewStub(client, reg, conn, trace.NewNoopTracerProvider().Tracer("wdvectors"), 0)
	callErr := do(ctx, reg.ClientStubFn(stub, "wdvectors"))
	conn.Close()
	srvEnd.Close()

	rec.mu.Lock()
	defer rec.mu.Unlock()
	return exchange{sent: splitFrames(rec.sent), recv: splitFrames(rec.recv)}, callErr
}

// splitFrames cuts a byte stream into frames (16-byte header, length in bytes
// 9..15).
func splitFrames(b []byte) [][]byte {
	var frames [][]byte
	for len(b) > 0 {
		if len(b) < 16 {
			fatal(fmt.Errorf("truncated frame header %x", b))
		}
		n := 16 + int(binary.LittleEndian.Uint64(b[8:16])>>8)
		if len(b) < n {
			fatal(fmt.Errorf("truncated frame %x", b))
		}
		frames = append(frames, b[:n:n])
		b = b[n:]
	}
	return frames
}

func deployer(c any) control.DeployerControl { return c.(control.DeployerControl) }
func weavelet(c any) control.WeaveletControl { return c.(control.WeaveletControl) }

func must(e exchange, err error) exchange {
	if err != nil {
		fatal(err)
	}
	return e
}

// traced returns ctx carrying the sampled span context trace id 01..10, span
// id 11..18 (the values of docs/weaver-protocol.md §4.10).
func traced(ctx context.Context) context.Context {
	var tid trace.TraceID
	var sid trace.SpanID
	for i := range tid {
		tid[i] = byte(1 + i)
	}
	for i := range sid {
		sid[i] = byte(0x11 + i)
	}
	return trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
}

// requestHeader returns the request header of a type-1 frame: hdrLen and the
// encoded header (v0.24.4+) or the fixed 49 bytes (-old).
func requestHeader(frame []byte) []byte {
	payload := frame[16:]
	if *old {
		return payload[:49]
	}
	return payload[:4+binary.LittleEndian.Uint32(payload[:4])]
}

func printFrames() {
	bg := context.Background()
	ver := "v0.24.6"
	if *old {
		ver = "v0.24.3"
	}
	frame := func(name, desc string, b []byte) {
		out.vector(name, desc+" (weaver "+ver+", frame)", b)
	}
	d := &fakeDeployer{}

	// ActivateComponent, plain: also gives the version message and the header.
	activate := func(ctx context.Context, req *protos.ActivateComponentRequest) func(context.Context, any) error {
		return func(ctx context.Context, c any) error {
			_, err := deployer(c).ActivateComponent(ctx, req)
			return err
		}
	}
	cart := &protos.ActivateComponentRequest{Component: "example.com/shop/Cart"}
	e := must(session(deployerControlName, d, deployerControlName, bg, activate(bg, cart)))
	frame("frame.version", "version message, client to server (the server answers the same bytes)", e.sent[0])
	if !*old && string(e.recv[0]) != string(e.sent[0]) {
		fatal(errors.New("version messages differ"))
	}
	out.vector("request_header", "request header without deadline, trace or metadata (weaver "+ver+"; payload bytes before the arguments)", requestHeader(e.request()))
	frame("activate_component.request", `request id 1: ActivateComponent{component: "example.com/shop/Cart"}`, e.request())
	frame("activate_component.reply", "response id 1: ActivateComponentReply{} and nil error", e.response())

	e = must(session(deployerControlName, d, deployerControlName, bg,
		activate(bg, &protos.ActivateComponentRequest{Component: "example.com/shop/Inventory", Routed: true})))
	frame("activate_component.request.routed", `request id 1: ActivateComponent{component: "example.com/shop/Inventory", routed: true}`, e.request())

	// Trace context (and metadata, v0.24.4+), no deadline.
	tctx := traced(bg)
	e = must(session(deployerControlName, d, deployerControlName, tctx, activate(tctx, cart)))
	out.vector("request_header.trace", "request header with the sampled trace context 0102..10/1112..18, no deadline (weaver "+ver+")", requestHeader(e.request()))
	frame("activate_component.request.trace", `request id 1: ActivateComponent{component: "example.com/shop/Cart"} with that trace context`, e.request())
	if !*old {
		mctx := withMetadata(tctx)
		e = must(session(deployerControlName, d, deployerControlName, mctx, activate(mctx, cart)))
		out.vector("request_header.trace_metadata", `request header with that trace context and metadata {"k": "v"}, no deadline (weaver `+ver+")", requestHeader(e.request()))
		frame("activate_component.request.trace_metadata", `request id 1: ActivateComponent{component: "example.com/shop/Cart"} with that trace context and metadata {"k": "v"}`, e.request())
	}

	// Application error: type 2, nil reply, one tag-3 error.
	e, err := session(deployerControlName, &fakeDeployer{activateErr: errDeferred}, deployerControlName, bg, activate(bg, cart))
	if err == nil || err.Error() != errDeferred.Error() {
		fatal(fmt.Errorf("ActivateComponent error = %v", err))
	}
	frame("activate_component.reply.error", `response id 1: nil ActivateComponentReply and errors.New("`+errDeferred.Error()+`") (application error)`, e.response())

	// Handler failure: unknown method key, type 3.
	e, err = session(deployerControlName, d, weaveletControlName, bg, func(ctx context.Context, c any) error {
		_, err := weavelet(c).GetHealth(ctx, &protos.GetHealthRequest{})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "unknown function") {
		fatal(fmt.Errorf("unknown method: error = %v", err))
	}
	frame("error.unknown_function.request", "request id 1: weaveletControl.GetHealth{} sent to a server that only serves deployerControl", e.request())
	frame("error.unknown_function", `response error (type 3) id 1: "internal error: unknown function"`, e.response())

	// The other deployerControl methods.
	e = must(session(deployerControlName, d, deployerControlName, bg, func(ctx context.Context, c any) error {
		_, err := deployer(c).GetListenerAddress(ctx, &protos.GetListenerAddressRequest{Name: "shop"})
		return err
	}))
	frame("get_listener_address.request", `request id 1: GetListenerAddress{name: "shop"}`, e.request())
	frame("get_listener_address.reply", `response id 1: GetListenerAddressReply{address: "localhost:0"}`, e.response())

	e = must(session(deployerControlName, d, deployerControlName, bg, func(ctx context.Context, c any) error {
		_, err := deployer(c).ExportListener(ctx, &protos.ExportListenerRequest{Listener: "shop", Address: "127.0.0.1:41513"})
		return err
	}))
	frame("export_listener.request", `request id 1: ExportListener{listener: "shop", address: "127.0.0.1:41513"}`, e.request())
	frame("export_listener.reply", `response id 1: ExportListenerReply{proxy_address: "127.0.0.1:41513"}`, e.response())

	entry := &protos.LogEntry{
		App: "shop", Version: "dep-1", Component: "example.com/shop/Cart", Node: "w-1",
		TimeMicros: 1700000000000000, Level: "info", File: "cart.go", Line: 42,
		Msg: "added item", Attrs: []string{"item", "apple"},
	}
	e = must(session(deployerControlName, d, deployerControlName, bg, func(ctx context.Context, c any) error {
		return deployer(c).LogBatch(ctx, &protos.LogEntryBatch{Entries: []*protos.LogEntry{entry}})
	}))
	frame("log_batch.request", `request id 1: LogEntryBatch{entries: [{app: "shop", version: "dep-1", `+
		`component: "example.com/shop/Cart", node: "w-1", time_micros: 1700000000000000, level: "info", `+
		`file: "cart.go", line: 42, msg: "added item", attrs: ["item", "apple"]}]}`, e.request())
	frame("log_batch.reply", "response id 1: nil error (LogBatch returns only an error)", e.response())

	// weaveletControl methods (the deployer is the client).
	w := fakeWeavelet{}
	wl := func(do func(context.Context, control.WeaveletControl) error) exchange {
		return must(session(weaveletControlName, w, weaveletControlName, bg, func(ctx context.Context, c any) error {
			return do(ctx, weavelet(c))
		}))
	}
	e = wl(func(ctx context.Context, c control.WeaveletControl) error {
		_, err := c.InitWeavelet(ctx, &protos.InitWeaveletRequest{
			Sections: map[string]string{"example.com/shop/Cart": "Max = 10\n"},
		})
		return err
	})
	frame("init_weavelet.request", `request id 1: InitWeavelet{sections: {"example.com/shop/Cart": "Max = 10\n"}}`, e.request())
	frame("init_weavelet.reply", `response id 1: InitWeaveletReply{dial_addr: "tcp://127.0.0.1:40917", version: {major: 0, minor: 24, patch: 0}}`, e.response())

	e = wl(func(ctx context.Context, c control.WeaveletControl) error {
		_, err := c.UpdateComponents(ctx, &protos.UpdateComponentsRequest{Components: []string{"example.com/shop/Cart"}})
		return err
	})
	frame("update_components.request", `request id 1: UpdateComponents{components: ["example.com/shop/Cart"]}`, e.request())
	frame("update_components.reply", "response id 1: UpdateComponentsReply{} and nil error", e.response())

	routing := func(ri *protos.RoutingInfo) exchange {
		return wl(func(ctx context.Context, c control.WeaveletControl) error {
			_, err := c.UpdateRoutingInfo(ctx, &protos.UpdateRoutingInfoRequest{RoutingInfo: ri})
			return err
		})
	}
	e = routing(&protos.RoutingInfo{Component: "example.com/shop/Cart", Replicas: []string{"tcp://127.0.0.1:36327"}})
	frame("update_routing_info.request", `request id 1: UpdateRoutingInfo{routing_info: {component: "example.com/shop/Cart", replicas: ["tcp://127.0.0.1:36327"]}}`, e.request())
	frame("update_routing_info.reply", "response id 1: UpdateRoutingInfoReply{} and nil error", e.response())
	e = routing(&protos.RoutingInfo{Component: "example.com/shop/Pricer", Local: true})
	frame("update_routing_info.request.local", `request id 1: UpdateRoutingInfo{routing_info: {component: "example.com/shop/Pricer", local: true}}`, e.request())
	frame("update_routing_info.reply.nil", "response id 1: nil UpdateRoutingInfoReply and nil error (a weavelet's answer to a local update)", e.response())
	e = routing(&protos.RoutingInfo{
		Component: "example.com/shop/Inventory",
		Replicas:  []string{"tcp://127.0.0.1:34331"},
		Assignment: &protos.Assignment{
			Slices:  []*protos.Assignment_Slice{{Start: 0, Replicas: []string{"tcp://127.0.0.1:34331"}}},
			Version: 1,
		},
	})
	frame("update_routing_info.request.routed", `request id 1: UpdateRoutingInfo{routing_info: {component: "example.com/shop/Inventory", `+
		`replicas: ["tcp://127.0.0.1:34331"], assignment: {slices: [{start: 0, replicas: ["tcp://127.0.0.1:34331"]}], version: 1}}}`, e.request())

	e = wl(func(ctx context.Context, c control.WeaveletControl) error {
		_, err := c.GetHealth(ctx, &protos.GetHealthRequest{})
		return err
	})
	frame("get_health.request", "request id 1: GetHealth{} (empty message)", e.request())
	frame("get_health.reply", `response id 1: GetHealthReply{status: HEALTHY, healthy_components: ["example.com/shop/Cart"]}`, e.response())
}
