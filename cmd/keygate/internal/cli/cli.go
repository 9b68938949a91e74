// Package cli is the keygate command line. Commands are data (see
// commands.go); [Main] finds the command named by the arguments, parses
// its flags and runs it. Main never exits the process: it returns an
// error, an [*ExitError] when the exit status is not 1.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// Env is what a command may touch of the world: standard streams, the
// environment and the clock.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// LookupEnv reads environment variables. Nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Signals, when true, ends long-running commands on SIGINT and
	// SIGTERM as well as when the context of Main ends.
	Signals bool
}

// OSEnv returns the Env of the process.
func OSEnv() Env {
	return Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv, Now: time.Now, Signals: true}
}

func (e *Env) fill() {
	if e.Stdin == nil {
		e.Stdin = strings.NewReader("")
	}
	if e.Stdout == nil {
		e.Stdout = io.Discard
	}
	if e.Stderr == nil {
		e.Stderr = io.Discard
	}
	if e.LookupEnv == nil {
		e.LookupEnv = os.LookupEnv
	}
	if e.Now == nil {
		e.Now = time.Now
	}
}

// ExitError asks for an exit status other than 1. Err, when set, has
// already been reported on standard error.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Exit statuses.
const (
	ExitFailure = 1 // the command failed, or its verdict is no
	ExitUsage   = 2 // the command line is wrong
)

// reported marks an error already written to standard error.
type reported struct{ err error }

func (r reported) Error() string { return r.err.Error() }
func (r reported) Unwrap() error { return r.err }

// Main runs the command args name (args excludes the program name) and
// returns its error, nil for exit status 0. Errors are written to
// env.Stderr before Main returns; the caller only maps them to an exit
// status, with errors.As for [*ExitError], 1 otherwise.
func Main(ctx context.Context, args []string, env Env) error {
	env.fill()
	cmds := commands()
	if len(args) == 0 {
		printUsage(env.Stderr, cmds)
		return &ExitError{Code: ExitUsage}
	}
	switch args[0] {
	case "-h", "-help", "--help":
		printUsage(env.Stdout, cmds)
		return nil
	case "-v", "-version", "--version":
		args = []string{"version"}
	}
	cmd, rest := find(cmds, args)
	if cmd == nil {
		group := groupOf(cmds, args[0])
		if len(group) > 0 {
			fmt.Fprintf(env.Stderr, "keygate %s: give a subcommand:\n", args[0])
			printList(env.Stderr, group)
		} else {
			fmt.Fprintf(env.Stderr, "keygate: unknown command %q; run keygate help\n", args[0])
		}
		return &ExitError{Code: ExitUsage}
	}
	fs := flag.NewFlagSet("keygate "+cmd.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if cmd.Flags != nil {
		cmd.Flags(fs)
	}
	positional, err := parseInterspersed(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(env.Stdout, cmd)
		return nil
	}
	if err == nil && cmd.Args != nil {
		err = cmd.Args(positional)
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "keygate %s: %v\nusage: keygate %s\n", cmd.Name, err, cmd.Usage)
		return &ExitError{Code: ExitUsage, Err: err}
	}
	err = cmd.Run(ctx, &Invocation{Env: env, Flags: fs, Args: positional, commands: cmds})
	if err == nil {
		return nil
	}
	var ee *ExitError
	var rep reported
	switch {
	case errors.As(err, &ee):
		if ee.Err != nil && !errors.As(ee.Err, &rep) {
			fmt.Fprintf(env.Stderr, "keygate %s: %v\n", cmd.Name, ee.Err)
		}
	case errors.As(err, &rep):
	default:
		fmt.Fprintf(env.Stderr, "keygate %s: %v\n", cmd.Name, err)
	}
	return err
}

// Invocation is one run of a command: its environment, parsed flags and
// positional arguments.
type Invocation struct {
	Env
	Flags    *flag.FlagSet
	Args     []string
	commands []Command
}

// String returns the value of a string flag.
func (in *Invocation) String(name string) string { return in.Flags.Lookup(name).Value.String() }

// Bool returns the value of a bool flag.
func (in *Invocation) Bool(name string) bool {
	return in.Flags.Lookup(name).Value.(flag.Getter).Get().(bool)
}

// Duration returns the value of a duration flag.
func (in *Invocation) Duration(name string) time.Duration {
	return in.Flags.Lookup(name).Value.(flag.Getter).Get().(time.Duration)
}

// Strings returns the values of a repeatable list flag.
func (in *Invocation) Strings(name string) []string {
	return slices.Clone(*in.Flags.Lookup(name).Value.(*listFlag))
}

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// parseInterspersed parses flags wherever they stand among the
// positional arguments; "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if len(args) > 0 && args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// find returns the command with the longest name that args start with.
func find(cmds []Command, args []string) (*Command, []string) {
	var best *Command
	var n int
	for i := range cmds {
		words := strings.Fields(cmds[i].Name)
		if len(words) <= len(args) && slices.Equal(words, args[:len(words)]) && len(words) > n {
			best, n = &cmds[i], len(words)
		}
	}
	return best, args[n:]
}

// groupOf returns the commands whose name starts with word.
func groupOf(cmds []Command, word string) []Command {
	var out []Command
	for _, c := range cmds {
		if strings.HasPrefix(c.Name, word+" ") {
			out = append(out, c)
		}
	}
	return out
}

func printUsage(w io.Writer, cmds []Command) {
	fmt.Fprintln(w, "keygate validates Keycloak access tokens in front of a service.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "usage: keygate <command> [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	printList(w, cmds)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run keygate help <command> for a command's flags. docs/config.md describes the configuration.")
}

func printList(w io.Writer, cmds []Command) {
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-15s %s\n", c.Name, c.Short)
	}
}

func printHelp(w io.Writer, c *Command) {
	fmt.Fprintf(w, "usage: keygate %s\n\n%s\n", c.Usage, c.Short)
	if c.Long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.Long))
	}
	if c.Flags != nil {
		fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
		c.Flags(fs)
		var has bool
		fs.VisitAll(func(*flag.Flag) { has = true })
		if has {
			fmt.Fprintln(w, "\nflags:")
			fs.SetOutput(w)
			fs.PrintDefaults()
		}
	}
}
