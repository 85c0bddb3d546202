package main

import (
	"context"

	"github.com/ServiceWeaver/weaver/metadata"
)

// withMetadata attaches one metadata entry to calls (weaver >= v0.24.4 only;
// shop-v0243 has its own meta.go without it).
func withMetadata(ctx context.Context) context.Context {
	return metadata.NewContext(ctx, map[string]string{"shop": "buy"})
}
