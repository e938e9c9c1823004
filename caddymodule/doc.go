// Package caddymodule is the advcaptcha Caddy HTTP handler.
package caddymodule
