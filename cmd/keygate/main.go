// Command keygate validates Keycloak access tokens in front of a service:
// as a reverse proxy, as a forward-auth endpoint for NGINX, Caddy or
// Traefik, or as a local demo (keygate dev). Run keygate help.
package main

import (
	"context"
	"errors"
	"os"

	"github.com/keygate/keygate/cmd/keygate/internal/cli"
)

func main() {
	err := cli.Main(context.Background(), os.Args[1:], cli.OSEnv())
	var exit *cli.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		os.Exit(exit.Code)
	default:
		os.Exit(cli.ExitFailure)
	}
}
