//go:build !weaver_v0243

package main

import (
	"context"

	"github.com/ServiceWeaver/weaver/metadata"
)

// withMetadata attaches the one-entry metadata map {"k": "v"} (weaver >= v0.24.4).
func withMetadata(ctx context.Context) context.Context {
	return metadata.NewContext(ctx, map[string]string{"k": "v"})
}
