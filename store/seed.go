package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// seedBatch is how many rows SeedAudit writes per transaction.
const seedBatch = 10_000

// SeedAudit appends n synthetic audit rows, chained exactly like real ones
// (benchmarks and demos; never on production data). Row i is dated
// start + i*step. The mix is realistic: mostly logins and sessions by a
// handful of staff from a few addresses, some failures, and rare staff
// and key changes. It writes 10,000 rows per transaction and advances the
// audit head, so VerifyAudit passes afterwards.
func (s *Store) SeedAudit(ctx context.Context, n int, start time.Time, step time.Duration) error {
	if n < 0 {
		return errorf(CodeInvalid, "cannot seed a negative number of rows")
	}
	rng := rand.New(rand.NewPCG(uint64(n), uint64(start.UnixNano())))
	g := seedGen{
		rng:   rng,
		staff: []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"},
		addrs: []string{"203.0.113.7", "203.0.113.24", "198.51.100.12", "198.51.100.80", "192.0.2.33", "10.20.0.5", "10.20.0.17"},
	}
	for done := 0; done < n; {
		batch := min(seedBatch, n-done)
		err := s.write(ctx, func(tx *wtx) error {
			var prevID int64
			var prevHash string
			err := tx.QueryRowContext(ctx, `SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1`).Scan(&prevID, &prevHash)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("store: seed audit: %w", err)
			}
			ins, err := tx.PrepareContext(ctx, `INSERT INTO audit (id, time, actor, action, target, detail, remote_addr, session_id, channel, hash)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
			if err != nil {
				return fmt.Errorf("store: seed audit: %w", err)
			}
			defer ins.Close()
			for i := range batch {
				e := g.event(start.Add(time.Duration(done+i) * step))
				e.ID = prevID + 1
				e.Time = e.Time.UTC().Truncate(time.Millisecond)
				e.Hash = chainHash(s.auditMK, prevHash, e)
				if _, err := ins.ExecContext(ctx, e.ID, e.Time.Format(TimeFormat), e.Actor, e.Action, e.Target,
					e.Detail, e.RemoteAddr, e.SessionID, e.Channel, e.Hash); err != nil {
					return fmt.Errorf("store: seed audit: %w", err)
				}
				prevID, prevHash = e.ID, e.Hash
			}
			tx.headID, tx.headHash = prevID, prevHash
			return nil
		})
		if err != nil {
			return err
		}
		done += batch
	}
	return nil
}

// seedGen makes plausible audit events.
type seedGen struct {
	rng     *rand.Rand
	staff   []string
	addrs   []string
	session int
}

func (g *seedGen) event(t time.Time) Event {
	r := g.rng
	who := g.staff[r.IntN(len(g.staff))]
	addr := g.addrs[r.IntN(len(g.addrs))] + ":" + strconv.Itoa(40000+r.IntN(20000))
	fp := "SHA256:seed" + strconv.Itoa(r.IntN(len(g.staff)*2)) + "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	e := Event{Time: t, Actor: who, Target: who, RemoteAddr: addr, Channel: ChannelSSH}
	var d Detail
	switch p := r.IntN(1000); {
	case p < 300:
		e.Action = ActionLoginSuccess
		d = Detail{"fingerprint": fp, "purpose": PurposeLogin, "method": "totp", "step": t.Unix() / 30}
	case p < 400:
		e.Action = ActionLoginFailure
		reasons := []string{"wrong code", "replayed code", "unknown key"}
		d = Detail{"fingerprint": fp, "purpose": PurposeLogin, "reason": reasons[r.IntN(len(reasons))]}
		if r.IntN(4) == 0 {
			e.Actor = "unknown"
			e.Target = []string{"root", "admin", "test", "ubuntu"}[r.IntN(4)]
		}
	case p < 650:
		g.session++
		e.Action = ActionSessionStart
		e.SessionID = "s" + strconv.Itoa(g.session)
		d = Detail{"fingerprint": fp, "pty": "xterm-256color"}
	case p < 900:
		e.Action = ActionSessionEnd
		e.SessionID = "s" + strconv.Itoa(max(1, g.session-r.IntN(5)))
		d = Detail{"duration_s": r.IntN(3600), "reason": "exit"}
	case p < 920:
		e.Action = ActionSessionTerminated
		e.SessionID = "s" + strconv.Itoa(max(1, g.session-r.IntN(5)))
		d = Detail{"reason": "idle"}
	case p < 940:
		e.Action = ActionLoginRecoveryCode
		d = Detail{"fingerprint": fp, "purpose": PurposeLogin, "remaining": r.IntN(10)}
	case p < 955:
		e.Action = ActionLoginLocked
		d = Detail{"fingerprint": fp, "failures": 5, "until": t.Add(15 * time.Minute).UTC().Format(TimeFormat)}
	case p < 970:
		e.Action = ActionKeyUpdated
		e.Target = stripeKeyName
		mode := []string{ModeTest, ModeLive}[r.IntN(2)]
		d = Detail{"new": "sk_" + mode + "_..." + strconv.Itoa(1000+r.IntN(9000)), "mode": mode, "kind": KindSecret,
			"storage": SourceDatabase, "old": nil, "step_up": true}
	case p < 980:
		e.Action = ActionStaffAdded
		e.Channel = ChannelCLI
		e.Target = g.staff[r.IntN(len(g.staff))]
		d = Detail{"role": RoleStaff, "fingerprint": fp, "enroll_at_login": r.IntN(2) == 0}
	case p < 985:
		e.Action = ActionStaffKeyRemoved
		e.Target = g.staff[r.IntN(len(g.staff))]
		d = Detail{"fingerprint": fp}
	case p < 990:
		e.Action = ActionStaffUnlocked
		e.Target = g.staff[r.IntN(len(g.staff))]
	case p < 995:
		e.Action = ActionTOTPEnrolled
		d = Detail{"fingerprint": fp}
	default:
		e.Action = ActionAuditExported
		e.Channel = ChannelCLI
		e.Target = "audit"
		d = Detail{"format": FormatJSONL}
	}
	if e.Channel == ChannelCLI {
		e.RemoteAddr = ""
	}
	if d == nil {
		d = Detail{}
	}
	b, _ := json.Marshal(d)
	e.Detail = string(b)
	return e
}
