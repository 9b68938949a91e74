package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/keygate/keygate/cmd/keygate/internal/cluster"
	"github.com/keygate/keygate/cmd/keygate/internal/config"
	"github.com/keygate/keygate/cmd/keygate/internal/dev"
	"github.com/keygate/keygate/cmd/keygate/internal/server"
	"github.com/keygate/keygate/cmd/keygate/internal/tokentool"
)

// Command is one keygate command.
type Command struct {
	// Name is the command's words, such as "token verify".
	Name string
	// Usage is the synopsis after "keygate ".
	Usage string
	// Short is a one-line summary; Long, optional, says more.
	Short, Long string
	// Flags defines the command's flags. Nil means none.
	Flags func(*flag.FlagSet)
	// Args checks the positional arguments. Nil means any.
	Args func([]string) error
	// Run runs the command.
	Run func(ctx context.Context, in *Invocation) error
}

// commands returns the command table.
func commands() []Command {
	return []Command{
		{
			Name:  "serve",
			Usage: "serve --config FILE",
			Short: "Run the proxy and forward-auth server from a configuration file",
			Long: `Loads and checks FILE, then serves until SIGINT or SIGTERM, after which
in-flight requests get timeouts.shutdown to finish. Logs are JSON on
standard error. See docs/config.md and examples/keygate.yaml.`,
			Flags: func(fs *flag.FlagSet) {
				fs.String("config", "keygate.yaml", "the configuration `file`")
			},
			Args: serveArgs,
			Run:  runServe,
		},
		{
			Name:  "config check",
			Usage: "config check FILE",
			Short: "Check a configuration file and print its problems by line",
			Long: `Exits 0 when FILE is valid, 1 otherwise. Environment variables are substituted as serve would.
Risky settings that are valid (a plain-HTTP listener on every interface, tiny key refetch
intervals, a long leeway...) are printed as FILE:LINE: warning: ... and do not change the exit status.`,
			Args: exactlyOne("FILE"),
			Run:  runConfigCheck,
		},
		{
			Name:  "dev",
			Usage: "dev [--issuer URL] [--listen ADDR] [--issuer-listen ADDR] [--upstream-listen ADDR]",
			Short: "Run a demo: embedded issuer, echo upstream and the proxy, with curl lines to try",
			Long: `Starts an embedded Keycloak-compatible issuer (realm "dev"), a demo upstream
that echoes each request as JSON, and keygate in front of it, then prints
what to try. With --issuer, the proxy uses that Keycloak realm instead of
the embedded issuer.`,
			Flags: func(fs *flag.FlagSet) {
				fs.String("listen", dev.DefaultListen, "the proxy's `address`")
				fs.String("issuer-listen", dev.DefaultIssuerListen, "the embedded issuer's `address`")
				fs.String("upstream-listen", dev.DefaultUpstreamListen, "the demo upstream's `address`")
				fs.String("admin-listen", "", "the proxy's admin `address` (/healthz, /readyz, /metrics); empty for none")
				fs.String("issuer", "", "a Keycloak realm `URL` to use instead of the embedded issuer")
				fs.String("audience", dev.DefaultAudience, "the audience the proxy requires")
			},
			Args: noArgs,
			Run:  runDev,
		},
		{
			Name:  "token inspect",
			Usage: "token inspect JWT|-",
			Short: "Decode a token's header and claims, without verifying anything",
			Args:  exactlyOne("JWT (or - to read it from standard input)"),
			Run:   runTokenInspect,
		},
		{
			Name:  "token verify",
			Usage: "token verify (--config FILE | --issuer URL --audience AUD [--jwks-url URL]) JWT|-",
			Short: "Verify a token as serve would, printing each check",
			Long: `Runs the library's verifier (the checks serve runs, in the same order) and
prints each check it ran, then the verdict. With --config, the key source
and verifier are exactly those serve builds from that file (authorized
parties, algorithms, token size, role mapping included); with --issuer and
--audience, only what the flags set. Exits 0 when the token is valid, 1
otherwise. Give the token alone, without "Bearer ".`,
			Flags: func(fs *flag.FlagSet) {
				fs.String("config", "", "verify as keygate serve with this configuration `FILE` would")
				fs.String("issuer", "", "the exact iss the token must carry (without --config)")
				fs.Var(new(listFlag), "audience", "an accepted aud; repeat or comma-separate for several (without --config: required, as in serve)")
				fs.Bool("insecure-skip-audience-check", false, "accept any aud, as the config key insecure_skip_audience_check does")
				fs.String("jwks-url", "", "fetch keys from this `URL` instead of discovering them")
				fs.Bool("insecure-allow-http", false, "allow plain http key URLs for hosts other than loopback")
				fs.Bool("allow-untyped", false, "accept tokens without typ")
				fs.Duration("leeway", 0, "clock skew allowed on exp, nbf and iat (0 means 60s)")
			},
			Args: exactlyOne("JWT (or - to read it from standard input)"),
			Run:  runTokenVerify,
		},
		{
			Name:  "token mint",
			Usage: "token mint --issuer URL (--user NAME --password PW | --client ID --secret S)",
			Short: "Get a token from a local dev issuer (keygate dev) and print it",
			Long: `Calls the token endpoint of the issuer with the password grant (--user) or
the client credentials grant (--secret). Only issuers on loopback addresses
are allowed.`,
			Flags: func(fs *flag.FlagSet) {
				fs.String("issuer", "http://"+dev.DefaultIssuerListen+"/realms/"+dev.Realm, "the dev issuer `URL`")
				fs.String("user", "", "username for the password grant")
				fs.String("password", "", "password for the password grant")
				fs.String("client", "", "client id (default demo-app with --user, demo-service without)")
				fs.String("secret", "", "client secret (default demo-secret for demo-service)")
				fs.String("scope", "", "requested scope, such as openid")
				fs.Bool("json", false, "print the whole token response instead of the access token")
			},
			Args: noArgs,
			Run:  runTokenMint,
		},
		{
			Name:  "version",
			Usage: "version",
			Short: "Print the version",
			Args:  noArgs,
			Run:   runVersion,
		},
		{
			Name:  "help",
			Usage: "help [COMMAND]",
			Short: "List the commands, or describe one",
			Run:   runHelp,
		},
	}
}

// serveArgs refuses arguments, and names --config when the argument
// looks like the configuration file given as config check takes it.
func serveArgs(args []string) error {
	if len(args) > 0 && (strings.HasSuffix(args[0], ".yaml") || strings.HasSuffix(args[0], ".yml")) {
		return fmt.Errorf("unexpected argument %q; the file goes after --config: keygate serve --config %s", args[0], args[0])
	}
	return noArgs(args)
}

func noArgs(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q", args[0])
	}
	return nil
}

func exactlyOne(what string) func([]string) error {
	return func(args []string) error {
		switch len(args) {
		case 0:
			return fmt.Errorf("missing %s", what)
		case 1:
			return nil
		}
		return fmt.Errorf("want one %s, got %d arguments", what, len(args))
	}
}

// signalContext returns ctx, also ended by SIGINT and SIGTERM when the
// environment asks for it.
func signalContext(ctx context.Context, in *Invocation) (context.Context, context.CancelFunc) {
	if !in.Signals {
		return context.WithCancel(ctx)
	}
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// loadConfig reads, loads and validates the named file. Problems are
// written to standard error, one per line.
func loadConfig(in *Invocation, name string) (*config.File, error) {
	f, err := config.ReadFile(name, in.LookupEnv)
	if err == nil {
		err = f.Validate()
	}
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(in.Stderr, e)
			}
			return nil, reported{err}
		}
		return nil, err
	}
	return f, nil
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func runServe(ctx context.Context, in *Invocation) error {
	f, err := loadConfig(in, in.String("config"))
	if err != nil {
		return err
	}
	log := newLogger(in.Stderr, f.Config.Log.Level)
	for _, w := range f.Warnings() {
		log.Warn("risky configuration", "file", w.File, "line", w.Line, "warning", w.Msg)
	}
	if f.Config.Cluster != nil {
		cluster.RouteRedisLog(log.With("component", "redis"))
	}
	srv, err := server.New(f.Config, server.Options{Logger: log})
	if err != nil {
		return err
	}
	ctx, stop := signalContext(ctx, in)
	defer stop()
	if err := srv.Run(ctx); err != nil {
		log.Error("keygate failed", "error", err.Error())
		return reported{err}
	}
	return nil
}

func runConfigCheck(ctx context.Context, in *Invocation) error {
	name := in.Args[0]
	f, err := loadConfig(in, name)
	if err != nil {
		return err
	}
	// Provision as serve would (rules, TLS files), without listening.
	if _, err := server.New(f.Config, server.Options{}); err != nil {
		fmt.Fprintf(in.Stderr, "%s: %v\n", name, err)
		return reported{err}
	}
	// Warnings do not fail the check: the settings are valid, and
	// serve runs with them.
	for _, w := range f.Warnings() {
		fmt.Fprintln(in.Stderr, w)
	}
	c := f.Config.WithDefaults()
	var what []string
	if c.Upstream != "" {
		what = append(what, "proxies "+c.Listen+" to "+c.Upstream)
	}
	if c.ForwardAuth != nil {
		what = append(what, "answers forward-auth on "+c.Listen+c.ForwardAuth.Path)
	}
	if c.ExtAuthz != nil {
		what = append(what, "answers Envoy ext_authz on "+c.ExtAuthz.Listen)
	}
	fmt.Fprintf(in.Stdout, "%s: OK: %s; issuer %s\n", name, strings.Join(what, " and "), c.Issuer)
	return nil
}

func runDev(ctx context.Context, in *Invocation) error {
	ctx, stop := signalContext(ctx, in)
	defer stop()
	log := newLogger(in.Stderr, "info")
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	env, err := dev.Start(startCtx, dev.Options{
		Listen:         in.String("listen"),
		IssuerListen:   in.String("issuer-listen"),
		UpstreamListen: in.String("upstream-listen"),
		AdminListen:    in.String("admin-listen"),
		Issuer:         in.String("issuer"),
		Audience:       in.String("audience"),
		Logger:         log,
	})
	cancel()
	if err != nil {
		return err
	}
	env.PrintGuide(in.Stdout)
	<-ctx.Done()
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return env.Close(closeCtx)
}

// tokenArg returns the token argument, read from standard input for "-".
func tokenArg(in *Invocation) (string, error) {
	if in.Args[0] != "-" {
		return in.Args[0], nil
	}
	b, err := io.ReadAll(io.LimitReader(in.Stdin, 1<<20))
	if err != nil {
		return "", fmt.Errorf("read the token from standard input: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", errors.New("standard input holds no token")
	}
	return tok, nil
}

func runTokenInspect(ctx context.Context, in *Invocation) error {
	tok, err := tokenArg(in)
	if err != nil {
		return err
	}
	return tokentool.Inspect(in.Stdout, tok, in.Now())
}

func runTokenVerify(ctx context.Context, in *Invocation) error {
	tok, err := tokenArg(in)
	if err != nil {
		return err
	}
	var cfg *config.Config
	switch name := in.String("config"); {
	case name != "" && (in.String("issuer") != "" || len(in.Strings("audience")) > 0):
		return &ExitError{Code: ExitUsage, Err: errors.New("give --config, or --issuer and --audience, not both")}
	case name != "":
		f, err := loadConfig(in, name)
		if err != nil {
			return err
		}
		cfg = &f.Config
	case in.String("issuer") == "":
		return &ExitError{Code: ExitUsage, Err: errors.New("--config or --issuer is required")}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ok, err := tokentool.Verify(ctx, in.Stdout, tok, tokentool.VerifyOptions{
		Config:                    cfg,
		Issuer:                    in.String("issuer"),
		Audiences:                 in.Strings("audience"),
		InsecureSkipAudienceCheck: in.Bool("insecure-skip-audience-check"),
		JWKSURL:                   in.String("jwks-url"),
		InsecureAllowHTTP:         in.Bool("insecure-allow-http"),
		AllowUntypedTokens:        in.Bool("allow-untyped"),
		Leeway:                    in.Duration("leeway"),
		Now:                       in.Now,
	})
	if errors.Is(err, tokentool.ErrBearerPrefix) || errors.Is(err, tokentool.ErrNoAudience) {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	if err != nil {
		return err
	}
	if !ok {
		return &ExitError{Code: ExitFailure}
	}
	return nil
}

func runTokenMint(ctx context.Context, in *Invocation) error {
	o := tokentool.MintOptions{
		Issuer: in.String("issuer"), User: in.String("user"), Password: in.String("password"),
		Client: in.String("client"), Secret: in.String("secret"), Scope: in.String("scope"),
	}
	switch {
	case o.Client == "" && o.User != "":
		o.Client = dev.PublicClient
	case o.Client == "":
		o.Client = dev.ServiceClient
		if o.Secret == "" {
			o.Secret = dev.ServiceSecret
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tr, err := tokentool.Mint(ctx, o)
	if err != nil {
		return err
	}
	if in.Bool("json") {
		fmt.Fprintln(in.Stdout, string(tr.Raw))
	} else {
		fmt.Fprintln(in.Stdout, tr.AccessToken)
	}
	return nil
}

// Version returns keygate's version: the module version when built from a
// released module, "(devel)" otherwise, with the VCS revision when known.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}

func runVersion(ctx context.Context, in *Invocation) error {
	fmt.Fprintf(in.Stdout, "keygate %s %s %s/%s\n", Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

func runHelp(ctx context.Context, in *Invocation) error {
	if len(in.Args) == 0 {
		printUsage(in.Stdout, in.commands)
		return nil
	}
	cmd, rest := find(in.commands, in.Args)
	if cmd == nil || len(rest) > 0 {
		if group := groupOf(in.commands, in.Args[0]); len(group) > 0 && cmd == nil {
			printList(in.Stdout, group)
			return nil
		}
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("unknown command %q", strings.Join(in.Args, " "))}
	}
	printHelp(in.Stdout, cmd)
	return nil
}
