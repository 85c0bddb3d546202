//go:build weaver_v0243

package main

import "context"

// withMetadata is unused before weaver v0.24.4 (no metadata package, and the
// 49-byte request header has no room for metadata).
func withMetadata(ctx context.Context) context.Context { return ctx }
