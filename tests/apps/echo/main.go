// Command echo is a weaver-docker test app with a raw TCP (non-HTTP) listener.
//
// Main owns the listener "echo". For every line a client sends, Main asks the
// Upper component (its own colocation group, so the call is remote) to
// upper-case it and writes the result back followed by "\n":
//
//	$ printf 'hello\nweaver\n' | nc HOST PORT
//	HELLO
//	WEAVER
//
// The connection is closed when the client closes its side.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
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
	upper weaver.Ref[Upper]
	echo  weaver.Listener
}

func serve(ctx context.Context, a *app) error {
	a.Logger(ctx).Info("echo ready", "addr", a.echo.Addr().String(), "proxy", a.echo.ProxyAddr())
	for {
		conn, err := a.echo.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go a.handle(ctx, conn)
	}
}

func (a *app) handle(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	a.Logger(ctx).Debug("echo connection", "remote", conn.RemoteAddr().String())
	in := bufio.NewScanner(conn)
	in.Buffer(make([]byte, 0, 4096), 1<<20)
	for in.Scan() {
		line := strings.TrimSuffix(in.Text(), "\r")
		up, err := a.upper.Get().Upper(ctx, line)
		if err != nil {
			fmt.Fprintf(conn, "error: %v\n", err)
			return
		}
		if _, err := fmt.Fprintf(conn, "%s\n", up); err != nil {
			return
		}
	}
}

// Upper runs in its own colocation group.
type Upper interface {
	Upper(ctx context.Context, s string) (string, error)
}

type upper struct {
	weaver.Implements[Upper]
}

func (u *upper) Upper(_ context.Context, s string) (string, error) {
	return strings.ToUpper(s), nil
}
