//go:build tools

// Package tools records the prometheus command so that `go mod tidy` keeps its dependencies.
package tools

import _ "github.com/prometheus/prometheus/cmd/prometheus"
