package caddycommand

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/advcaptcha/advcaptcha/captcha"
	"github.com/advcaptcha/advcaptcha/internal/secretkey"
	"github.com/advcaptcha/advcaptcha/modelregistry"
	"github.com/advcaptcha/advcaptcha/solver"
)

func modelCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "model <list|publish|rollback> --redis ADDR",
		Short: "Published solver model versions: list, publish, roll back",
		Long: `Every gateway on a Redis follows the solver model version published there
(adversarial { follow_models }), switching without a restart. "extract"
publishes the versions the learning loop makes; these commands let an
operator see them, publish a model file, or return to the previous version.`,
	}
	c.AddCommand(modelListCommand(), modelPublishCommand(), modelRollbackCommand())
	return c
}

func modelListCommand() *cobra.Command {
	var rf redisFlags
	var sf secretFlags
	c := &cobra.Command{
		Use:   "list --redis ADDR",
		Short: "List the published versions, newest first",
		Long: `Lists the published versions, newest first. With the gateway's secret
(ADVCAPTCHA_SECRET or --secret) it also says whether the current version is
authenticated, i.e. whether the gateways will follow it.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			keys, err := sf.modelKeys()
			if errors.Is(err, errNoSecret) {
				keys, err = nil, nil
			}
			if err != nil {
				return err
			}
			reg, done, err := rf.registry(keys)
			if err != nil {
				return err
			}
			defer done()
			hist, err := reg.History(cmd.Context())
			if err != nil {
				return err
			}
			if len(hist) == 0 {
				fmt.Fprintln(w, "no model version published: gateways use their configured model")
				return nil
			}
			cur, err := reg.Current(cmd.Context())
			if errors.Is(err, modelregistry.ErrUnauthenticated) && cur != nil {
				fmt.Fprintf(w, "the current version %s is NOT authenticated with this secret: gateways refuse it (%v)\n", cur.Version, err)
				err = nil
			}
			if err != nil {
				return err
			}
			printVersions(w, hist, cur.Version)
			return nil
		},
	}
	rf.register(c.Flags())
	sf.register(c.Flags())
	return c
}

func printVersions(out io.Writer, hist []modelregistry.Version, current string) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "\tVERSION\tPUBLISHED\tFIDELITY\tCHARACTERS\tCLEAN\tNOTE")
	for i, v := range hist {
		mark := ""
		if i == 0 && v.Version == current {
			mark = "*"
		}
		version := v.Version
		if len(v.With) > 0 {
			version += " with " + strings.Join(v.With, ", ")
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", mark, version, v.Published.Format(time.RFC3339),
			percent(v.Fidelity), percent(v.CharFidelity), percent(v.CleanAccuracy), v.Note)
	}
	w.Flush()
}

func percent(f float64) string {
	if f == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*f)
}

func modelPublishCommand() *cobra.Command {
	var rf redisFlags
	var sf secretFlags
	var file, note string
	c := &cobra.Command{
		Use:   "publish --redis ADDR --file MODEL [--note TEXT]",
		Short: "Publish a model file as the current version",
		Long: `Checks that the model reads the gateway's captcha style, then publishes it
as the current version, signed with the gateway's secret (ADVCAPTCHA_SECRET
or --secret, required); every gateway on this Redis switches to it within
its follow_models interval.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			if file == "" {
				return errors.New("--file is required")
			}
			keys, err := sf.modelKeys()
			if err != nil {
				return err
			}
			m, err := solver.Load(file)
			if err != nil {
				return err
			}
			style := captcha.DefaultStyle()
			if err := style.Validate(); err != nil {
				return err
			}
			if err := m.Reads(style.Height, style.Width, style.Charset); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			reg, done, err := rf.registry(keys)
			if err != nil {
				return err
			}
			defer done()
			expect, err := currentVersion(cmd.Context(), reg)
			if err != nil {
				return err
			}
			v, err := reg.Publish(cmd.Context(), m, expect, modelregistry.Version{Note: note})
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "published %s (replacing %s)\n", v.Version, orNone(expect))
			return nil
		},
	}
	f := c.Flags()
	rf.register(f)
	sf.register(f)
	f.StringVar(&file, "file", "", "model file, as written by train")
	f.StringVar(&note, "note", "published by an operator", "why, for the history")
	return c
}

func modelRollbackCommand() *cobra.Command {
	var rf redisFlags
	var sf secretFlags
	var expect string
	c := &cobra.Command{
		Use:   "rollback --redis ADDR [--from VERSION]",
		Short: "Make the version before the current one current again",
		Long: `Rolls back the current version to the one it replaced. With --from, only if
the current version is still VERSION (what you looked at with list). The
version returned to must be authenticated, and the new record is signed:
the gateway's secret is required (ADVCAPTCHA_SECRET or --secret). This is
also how to leave a forged current version.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			keys, err := sf.modelKeys()
			if err != nil {
				return err
			}
			reg, done, err := rf.registry(keys)
			if err != nil {
				return err
			}
			defer done()
			if expect == "" {
				if expect, err = currentVersion(cmd.Context(), reg); err != nil {
					return err
				}
				if expect == "" {
					return errors.New("no model version published: nothing to roll back")
				}
			}
			v, err := reg.Rollback(cmd.Context(), expect)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "rolled back from %s to %s\n", expect, v.Version)
			return nil
		},
	}
	rf.register(c.Flags())
	sf.register(c.Flags())
	c.Flags().StringVar(&expect, "from", "", "roll back only if this is the current version")
	return c
}

// currentVersion is the published version, or "" when there is none. A
// current version that is not authenticated (forged) is named all the
// same: publishing replaces it.
func currentVersion(ctx context.Context, reg *modelregistry.Registry) (string, error) {
	cur, err := reg.Current(ctx)
	if errors.Is(err, modelregistry.ErrNone) {
		return "", nil
	}
	if errors.Is(err, modelregistry.ErrUnauthenticated) && cur != nil {
		return cur.Version, nil
	}
	if err != nil {
		return "", err
	}
	return cur.Version, nil
}

func orNone(v string) string {
	if v == "" {
		return "no published version"
	}
	return v
}

// registry opens the model registry in the gateway's Redis; call done when
// finished.
// keys (nil for listing only) sign and verify versions.
func (r *redisFlags) registry(keys *secretkey.Keys) (reg *modelregistry.Registry, done func(), err error) {
	st, err := r.open()
	if err != nil {
		return nil, nil, err
	}
	return modelregistry.New(st, keys), func() { st.Close() }, nil
}
