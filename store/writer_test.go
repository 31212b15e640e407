package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestGroupCommitIsolatesCallers: callers that share a group transaction
// still succeed or fail alone, and the audit chain stays valid.
func TestGroupCommitIsolatesCallers(t *testing.T) {
	e := newEnv(t)
	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.s.write(ctxb, func(tx *wtx) error {
				if err := tx.audit(ctxb, System, "test.row", fmt.Sprint(i), nil); err != nil {
					return err
				}
				if i%3 == 0 {
					return errors.New("refused")
				}
				return nil
			})
		}()
	}
	wg.Wait()
	want := 0
	for i, err := range errs {
		switch {
		case i%3 == 0 && (err == nil || err.Error() != "refused"):
			t.Fatalf("caller %d: %v, want its own error", i, err)
		case i%3 != 0 && err != nil:
			t.Fatalf("caller %d: %v", i, err)
		case i%3 != 0:
			want++
		}
	}
	evs, err := e.s.ListAudit(ctxb, AuditQuery{ActionPrefix: "test.row", Limit: 1000})
	if err != nil || len(evs) != want {
		t.Fatalf("%d rows committed, want %d (%v)", len(evs), want, err)
	}
	for _, ev := range evs {
		var i int
		fmt.Sscan(ev.Target, &i)
		if i%3 == 0 {
			t.Fatalf("the row of failed caller %d was committed", i)
		}
	}
	mustVerifyAudit(t, e.s)
	if head, err := readHead(e.s.headPath()); err != nil || head.ID != evs[0].ID {
		t.Fatalf("head %+v %v, want row %d", head, err, evs[0].ID)
	}
}

// TestWriteCancelledBeforeStart: a caller whose context has ended does not
// run; once started, a write finishes even if the caller gives up.
func TestWriteCancelledBeforeStart(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(ctxb)
	cancel()
	ran := false
	err := e.s.write(ctx, func(tx *wtx) error { ran = true; return nil })
	if !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("cancelled write: ran=%v err=%v", ran, err)
	}
	ctx, cancel = context.WithCancel(ctxb)
	err = e.s.write(ctx, func(tx *wtx) error {
		cancel()
		return tx.audit(ctx, System, "test.row", "late", nil)
	})
	if err != nil {
		t.Fatalf("a started write was cut short: %v", err)
	}
	mustVerifyAudit(t, e.s)
}

func TestWriteAfterClose(t *testing.T) {
	e := newEnv(t)
	e.s.Close()
	if err := e.s.Audit(ctxb, System, "test.row", "x", nil); !errors.Is(err, errStoreClosed) {
		t.Fatalf("write after Close: %v", err)
	}
}
