// Package advcaptcha is what `xcaddy build --with github.com/advcaptcha/advcaptcha`
// imports: it registers the advcaptcha HTTP handler and the
// `caddy advcaptcha …` subcommands with Caddy.
package advcaptcha

import (
	// The http.handlers.advcaptcha module and its Caddyfile directive.
	_ "github.com/advcaptcha/advcaptcha/caddymodule"
	// The `caddy advcaptcha` subcommands.
	_ "github.com/advcaptcha/advcaptcha/caddycommand"
)
