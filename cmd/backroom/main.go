// Command backroom runs Backroom's servers (serve) and the administration
// commands that work on a data directory from the shell (staff, key, audit,
// clients, dev).
//
// Exit statuses: 0 success, 1 not found or a failed check, 2 a usage or
// configuration error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1 // not found, conflict, a check that failed, internal errors
	exitUsage  = 2 // usage or configuration error
)

func main() {
	inv := invocation{
		Args:   os.Args[1:],
		Env:    environ(),
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Prog:   progName(os.Args[0]),
	}
	os.Exit(inv.run())
}

// invocation is one run of the command line: its arguments, environment,
// working directory and streams. Nothing in it is read from the process
// except where a field says so, which keeps commands testable in-process.
type invocation struct {
	Args   []string
	Env    map[string]string // the environment (never modified)
	Dir    string            // working directory: where .env is read and relative paths start; "" = the process's
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Ctx    context.Context  // serve also stops when it ends; nil = context.Background()
	Now    func() time.Time // the store's clock; nil = time.Now
	Prog   string           // how to run this binary, for printed hints; "" = "backroom"
}

// environ returns the process environment as a map.
func environ() map[string]string {
	m := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// progName is how hints tell the user to run this binary: "backroom", or
// "go run ./cmd/backroom" when it was started by go run.
func progName(argv0 string) string {
	if strings.Contains(argv0, "go-build") {
		return "go run ./cmd/backroom"
	}
	return "backroom"
}

func (inv invocation) run() int {
	if inv.Ctx == nil {
		inv.Ctx = context.Background()
	}
	if inv.Stdin == nil {
		inv.Stdin = strings.NewReader("")
	}
	if inv.Prog == "" {
		inv.Prog = "backroom"
	}
	if inv.Env == nil {
		inv.Env = map[string]string{}
	}
	root := newRootCmd(&inv)
	root.SetArgs(inv.Args)
	err := root.ExecuteContext(inv.Ctx)
	if err == nil {
		return exitOK
	}
	code, msg := exitCode(err), err.Error()
	fmt.Fprintln(inv.Stderr, "backroom: "+redact(msg))
	return code
}

// exitError is an error with the exit status it leads to. Its message is
// shown as is, so it must never contain a secret.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usageErrorf is a usage or configuration error (exit 2).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// failErrorf is a failure (exit 1): not found, a failed check.
func failErrorf(format string, args ...any) error {
	return &exitError{code: exitFailed, msg: fmt.Sprintf(format, args...)}
}

// exitCode maps err to an exit status. Errors that did not come from a
// command (cobra's own: unknown flags, commands) are usage errors.
func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return exitUsage
}

// stripeLike matches anything shaped like a Stripe key, so that an error
// message built by a library (an unknown flag, an unknown command) cannot
// echo one someone typed on the command line by mistake.
var stripeLike = regexp.MustCompile(`\b(sk|rk|pk)_(test|live)_[A-Za-z0-9]+`)

// redact hides Stripe-key-shaped words in a message.
func redact(msg string) string {
	return stripeLike.ReplaceAllString(msg, "[redacted]")
}

// newRootCmd builds the command tree for one invocation.
func newRootCmd(inv *invocation) *cobra.Command {
	root := &cobra.Command{
		Use:   "backroom",
		Short: "Backroom: the staff back office (SSH console with public key + TOTP)",
		Long: `Backroom is a staff back office reached over SSH: public key first, then a TOTP
code, then a console. "backroom serve" runs the servers; the other commands manage
staff, the Stripe API key, the clients and the audit log of a data directory
from the shell.

First run:
  backroom serve
  backroom staff add NAME --key ~/.ssh/id_ed25519.pub
  ssh -p 2222 NAME@localhost

Exit status: 0 ok, 1 not found or check failed, 2 usage or configuration error.
"backroom serve --help" lists every setting.`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetIn(inv.Stdin)
	root.SetOut(inv.Stdout)
	root.SetErr(inv.Stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf("%v\nRun '%s --help' for usage.", err, c.CommandPath())
	})
	pf := root.PersistentFlags()
	pf.String(flagData, defaultData, "data directory (env "+envData+")")
	pf.String(flagLogLevel, defaultLogLevel, "log level: debug, info, warn or error (env "+envLogLevel+")")

	root.AddCommand(
		newServeCmd(inv),
		newStaffCmd(inv),
		newKeyCmd(inv),
		newAuditCmd(inv),
		newClientsCmd(inv),
		newWebhooksCmd(inv),
		newBenchCmd(inv),
		newDevCmd(inv),
		newVersionCmd(inv),
	)
	return root
}

// groupCmd is a command that only holds sub-commands: run bare or with an
// unknown sub-command, it is a usage error.
func groupCmd(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("%s needs a sub-command: %s\nRun '%s --help' for usage.",
					c.CommandPath(), subNames(c), c.CommandPath())
			}
			return usageErrorf("unknown command %q for %q (try: %s)", args[0], c.CommandPath(), subNames(c))
		},
	}
}

func subNames(c *cobra.Command) string {
	var names []string
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			names = append(names, s.Name())
		}
	}
	return strings.Join(names, ", ")
}

// exactArgs accepts exactly the named positional arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) == len(names) {
			return nil
		}
		what := "no arguments"
		if len(names) > 0 {
			what = strings.Join(names, " ")
		}
		return usageErrorf("%s takes %s, got %d argument(s)\nUsage: %s", c.CommandPath(), what, len(args), c.UseLine())
	}
}
