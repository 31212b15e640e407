package webhooks

import (
	"context"
	"log/slog"
	"time"
)

// DefaultRetention is how long webhook records are kept by default.
const DefaultRetention = 720 * time.Hour

// MinRetention is the shortest retention allowed: Stripe retries an event
// for up to 3 days, and an event id must outlive its retries to keep them
// duplicates.
const MinRetention = 72 * time.Hour

// DefaultPruneInterval is how often old records are pruned.
const DefaultPruneInterval = time.Hour

// Pruner is what pruning needs of the store.
type Pruner interface {
	PruneWebhooks(ctx context.Context, before time.Time) (int64, error)
}

// PruneConfig configures RunPruner.
type PruneConfig struct {
	Store     Pruner
	Retention time.Duration    // default DefaultRetention, at least MinRetention
	Interval  time.Duration    // default DefaultPruneInterval
	Now       func() time.Time // nil: time.Now
	Logger    *slog.Logger
}

// RunPruner deletes webhook events, attempts and rejection counters older
// than the retention: once at the start, then every interval, until ctx ends.
// A failed round is logged and retried at the next tick.
func RunPruner(ctx context.Context, cfg PruneConfig) {
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	cfg.Retention = max(cfg.Retention, MinRetention)
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultPruneInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		before := cfg.Now().Add(-cfg.Retention)
		n, err := cfg.Store.PruneWebhooks(ctx, before)
		switch {
		case err != nil && ctx.Err() == nil:
			cfg.Logger.Error("pruning webhook records", "before", before.UTC().Format(time.RFC3339), "err", err)
		case n > 0:
			cfg.Logger.Info("pruned webhook records", "deleted", n, "before", before.UTC().Format(time.RFC3339))
		default:
			cfg.Logger.Debug("pruned webhook records", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
