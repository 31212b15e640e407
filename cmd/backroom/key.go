package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"backroom/store"
)

// maxSecretInput bounds what `key set` reads from stdin.
const maxSecretInput = 4 << 10

func newKeyCmd(inv *invocation) *cobra.Command {
	c := groupCmd("key", "Show or set the Stripe API key")
	c.AddCommand(newKeySetCmd(inv), newKeyStatusCmd(inv))
	return c
}

func newKeySetCmd(inv *invocation) *cobra.Command {
	c := &cobra.Command{
		Use:   "set",
		Short: "Set the Stripe API key, read from stdin (never from the command line)",
		Long: `Set the Stripe API key. The key is read from stdin: one line, or typed at a
hidden prompt when stdin is a terminal. It is never taken from the command line,
where other users of the machine could see it.

Before it is stored the key is checked with Stripe (GET /v1/balance at
STRIPE_API_BASE): a key Stripe rejects is not stored and the message says why
(exit 2); when Stripe cannot be reached the key is stored anyway, with a
warning on stderr.

It is stored in the OS keyring with USE_KEYRING=1, otherwise sealed in the
database with the master key. STRIPE_API_KEY, when set, still wins over it.`,
		Example: `  backroom key set < stripe.key
  pass show stripe/live | backroom key set
  backroom key set            # prompts, input hidden`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				// The argument is likely the key itself: never repeat it.
				return usageErrorf("key set takes no arguments: pipe the key in on stdin (backroom key set < FILE), or run it alone to type the key at a hidden prompt. Never put the key on the command line: other users can see it and it stays in your shell history")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := inv.config(c)
			if err != nil {
				return err
			}
			e, err := inv.openStore(cfg, openOptions{needKeyring: true})
			if err != nil {
				return err
			}
			defer e.close()
			key, err := inv.readSecretLine("Stripe API key (input hidden): ")
			if err != nil {
				return err
			}
			st, err := e.st.SetStripeKey(inv.Ctx, inv.actor(), store.SetKeyRequest{Key: key})
			if err != nil {
				return e.storeError(err)
			}
			where := "sealed in the database with the master key"
			if cfg.UseKeyring {
				where = "in the OS keyring"
			}
			masked := st.Masked
			if st.Shadowed {
				masked = st.StoredMasked
			}
			fmt.Fprintf(inv.Stdout, "Stripe key %s saved (%s).\n", masked, where)
			if st.Warning != "" {
				fmt.Fprintf(inv.Stderr, "warning: %s. Check the network and %s (%s), then set the key again to have it checked.\n",
					st.Warning, envStripeAPIBase, cfg.StripeAPIBase)
			}
			if st.Shadowed {
				fmt.Fprintf(inv.Stdout, "Note: %s is set and wins: the key saved now is used only once it is unset.\n", envStripeKey)
			}
			printKeyStatus(inv.Stdout, st)
			return nil
		},
	}
	c.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		// A flag error could quote the key typed as a flag: say nothing of it.
		return usageErrorf("key set takes no flags or arguments but the global ones: pipe the key in on stdin (backroom key set < FILE)")
	})
	return c
}

// readSecretLine reads one line from stdin: at a hidden prompt when stdin
// is a terminal, otherwise the single line piped in.
func (inv *invocation) readSecretLine(prompt string) (string, error) {
	if f, ok := inv.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(inv.Stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(inv.Stderr)
		if err != nil {
			return "", usageErrorf("reading the key from the terminal: %v", err)
		}
		return string(b), nil
	}
	b, err := io.ReadAll(io.LimitReader(inv.Stdin, maxSecretInput+1))
	if err != nil {
		return "", usageErrorf("reading the key from stdin: %v", err)
	}
	if len(b) > maxSecretInput {
		return "", usageErrorf("stdin holds more than %d KiB: pipe in one line, the key", maxSecretInput>>10)
	}
	var lines [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if l = bytes.TrimSpace(l); len(l) > 0 {
			lines = append(lines, l)
		}
	}
	switch len(lines) {
	case 0:
		return "", usageErrorf("stdin is empty: pipe the key in (backroom key set < FILE)")
	case 1:
		return string(lines[0]), nil
	}
	return "", usageErrorf("stdin holds %d lines: pipe in exactly one line, the key", len(lines))
}

// keyStatusJSON is `key status --json`.
type keyStatusJSON struct {
	Source   string  `json:"source"`
	Mode     *string `json:"mode"`
	Kind     *string `json:"kind"`
	Masked   *string `json:"masked"`
	SetBy    *string `json:"set_by"`
	SetAt    *string `json:"set_at"`
	Shadowed bool    `json:"shadowed"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func newKeyStatusCmd(inv *invocation) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show where the Stripe key comes from and what it is (masked)",
		Long: `Show the active Stripe key: its source (env, keyring, database or none), mode
(test or live), kind (secret or restricted), the masked key, who set it and when.
--json keys: source, mode, kind, masked, set_by, set_at, shadowed (null when
there is no key; shadowed is true when STRIPE_API_KEY hides a stored key).`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := inv.openEnv(c, openOptions{needKeyring: true})
			if err != nil {
				return err
			}
			defer e.close()
			st, err := e.st.KeyStatus(inv.Ctx)
			if err != nil {
				return e.storeError(err)
			}
			if asJSON {
				out := keyStatusJSON{Source: st.Source, Shadowed: st.Shadowed}
				if st.Source != store.SourceNone {
					out.Mode, out.Kind, out.Masked = optional(st.Mode), optional(st.Kind), optional(st.Masked)
					out.SetBy = optional(st.SetBy)
					if !st.SetAt.IsZero() {
						out.SetAt = optional(st.SetAt.UTC().Format(time.RFC3339))
					}
				}
				return writeJSON(inv.Stdout, out)
			}
			if st.Source == store.SourceNone {
				fmt.Fprintf(inv.Stdout, "No Stripe key is set. Set one with: %s key set < FILE\n", inv.Prog)
				return nil
			}
			printKeyStatus(inv.Stdout, st)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return c
}

// printKeyStatus prints a key status as aligned lines; the key is masked.
func printKeyStatus(w io.Writer, st store.KeyStatus) {
	fmt.Fprintf(w, "  source:  %s\n", st.Source)
	fmt.Fprintf(w, "  mode:    %s (%s)\n", st.Mode, st.Badge())
	fmt.Fprintf(w, "  kind:    %s\n", st.Kind)
	fmt.Fprintf(w, "  key:     %s\n", st.Masked)
	if st.SetBy != "" {
		fmt.Fprintf(w, "  set by:  %s\n", st.SetBy)
	}
	if !st.SetAt.IsZero() {
		fmt.Fprintf(w, "  set at:  %s\n", st.SetAt.UTC().Format(time.RFC3339))
	}
	if st.Shadowed {
		fmt.Fprintf(w, "  stored:  %s (shadowed: %s wins)\n", st.StoredMasked, envStripeKey)
	}
}
