// Command caddy is Caddy with its standard modules and advcaptcha, built
// exactly as `xcaddy build --with github.com/advcaptcha/advcaptcha` would.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// advcaptcha.
	_ "github.com/advcaptcha/advcaptcha"
)

func main() {
	caddycmd.Main()
}
