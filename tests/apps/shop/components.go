package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/ServiceWeaver/weaver"
)

// Pricer is colocated with Main (local calls only).
type Pricer interface {
	Price(ctx context.Context, item string) (int, error)
}

type pricer struct {
	weaver.Implements[Pricer]
}

func (p *pricer) Price(ctx context.Context, item string) (int, error) {
	if item == "" {
		return 0, errors.New("missing item")
	}
	return 7 * len(item), nil
}

// Cart runs in its own group and is configured by its weaver.toml section.
type Cart interface {
	// Add reserves one unit of item and returns how many of it are in this
	// replica's cart and the stock Inventory has left.
	Add(ctx context.Context, item string) (inCart int, stock int, err error)
	// Settings returns the config section values.
	Settings(ctx context.Context) (store string, max int, err error)
	// Whoami returns the id of the weavelet serving the call.
	Whoami(ctx context.Context) (string, error)
	// LogAll logs one entry at each level (and a line on stdout and stderr).
	LogAll(ctx context.Context) (int, error)
}

type cartConfig struct {
	Store string
	Max   int
}

type cart struct {
	weaver.Implements[Cart]
	weaver.WithConfig[cartConfig]
	inventory weaver.Ref[Inventory]

	mu    sync.Mutex
	items map[string]int
	total int
}

func (c *cart) Init(ctx context.Context) error {
	c.items = map[string]int{}
	c.Logger(ctx).Info("cart ready", "store", c.Config().Store, "max", c.Config().Max)
	return nil
}

func (c *cart) Add(ctx context.Context, item string) (int, int, error) {
	c.mu.Lock()
	full := c.Config().Max > 0 && c.total >= c.Config().Max
	c.mu.Unlock()
	if full {
		c.Logger(ctx).Error("cart full", "item", item, "max", c.Config().Max)
		return 0, 0, fmt.Errorf("cart full (max %d)", c.Config().Max)
	}
	c.Logger(ctx).Debug("reserving", "item", item)
	stock, err := c.inventory.Get().Take(ctx, item)
	if err != nil {
		return 0, 0, err
	}
	c.mu.Lock()
	c.items[item]++
	c.total++
	n := c.items[item]
	c.mu.Unlock()
	c.Logger(ctx).Info("added item", "item", item, "in_cart", n, "stock", stock)
	return n, stock, nil
}

func (c *cart) Settings(context.Context) (string, int, error) {
	return c.Config().Store, c.Config().Max, nil
}

func (c *cart) Whoami(ctx context.Context) (string, error) {
	return weaveletID(ctx), nil
}

func (c *cart) LogAll(ctx context.Context) (int, error) {
	l := c.Logger(ctx)
	l.Debug("debug entry", "level", "debug", "n", 1)
	l.Info("info entry", "level", "info", "n", 2)
	l.Warn("warn entry", "level", "warn", "n", 3, "quoted", `say "hi"`)
	l.Error("error entry", "level", "error", "n", 4, "err", errors.New("synthetic failure"))
	fmt.Fprintln(os.Stdout, "cart: a line on stdout")
	fmt.Fprintln(os.Stderr, "cart: a line on stderr")
	return 4, nil
}

// Inventory runs in its own group and is routed by item, so each item's stock
// lives in one replica.
type Inventory interface {
	// Take removes one unit of item and returns the stock left.
	Take(ctx context.Context, item string) (int, error)
}

const initialStock = 10

type inventory struct {
	weaver.Implements[Inventory]
	weaver.WithRouter[inventoryRouter]

	mu    sync.Mutex
	taken map[string]int
}

func (inv *inventory) Init(context.Context) error {
	inv.taken = map[string]int{}
	return nil
}

func (inv *inventory) Take(ctx context.Context, item string) (int, error) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	left := initialStock - inv.taken[item]
	if left <= 0 {
		inv.Logger(ctx).Error("out of stock", "item", item)
		return 0, fmt.Errorf("out of stock: %s", item)
	}
	inv.taken[item]++
	left--
	if left < 3 {
		inv.Logger(ctx).Warn("stock low", "item", item, "left", left)
	} else {
		inv.Logger(ctx).Debug("took item", "item", item, "left", left)
	}
	return left, nil
}

type inventoryRouter struct{}

func (inventoryRouter) Take(_ context.Context, item string) string { return item }

// Crasher runs in its own group; Crash makes its weavelet panic and die.
type Crasher interface {
	Crash(ctx context.Context, why string) error
}

type crasher struct {
	weaver.Implements[Crasher]
}

func (c *crasher) Crash(ctx context.Context, why string) error {
	c.Logger(ctx).Error("crashing on purpose", "why", why)
	panic("shop: Crasher.Crash: " + why)
}
