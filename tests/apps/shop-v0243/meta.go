package main

import "context"

// withMetadata is a no-op here: the metadata package first appears in weaver
// v0.24.4. (main.go and components.go are symlinks to ../shop.)
func withMetadata(ctx context.Context) context.Context { return ctx }
