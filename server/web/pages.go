package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"backroom/store"
)

// --- dashboard -----------------------------------------------------------------

type dashboardData struct {
	Key       store.KeyStatus
	KeyErr    string
	Source    string
	SecretSet bool
	Failed    int
	Recent    []store.Event
	Session   store.WebSession
}

// recentAudit is how many audit rows the dashboard shows.
const recentAudit = 10

func (h *Handler) dashboard(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	d := dashboardData{SecretSet: h.cfg.WebhookSecretSet, Session: req.ws}
	ks, err := h.st.KeyStatus(ctx)
	if err != nil {
		d.KeyErr = store.ErrorMessage(err)
	}
	d.Key, d.Source = ks, store.SourceLabel(ks.Source)
	if d.Failed, err = h.st.CountFailedWebhooks(ctx); err != nil {
		return err
	}
	if d.Recent, err = h.st.ListAudit(ctx, store.AuditQuery{Limit: recentAudit}); err != nil {
		return err
	}
	h.render(w, r, req, http.StatusOK, "dashboard", view{Title: "Dashboard", Data: d})
	return nil
}

// --- Stripe key --------------------------------------------------------------------

type keyData struct {
	Key     store.KeyStatus
	KeyErr  string
	Source  string
	Storage string
}

func (h *Handler) keyData(ctx context.Context) keyData {
	ks, err := h.st.KeyStatus(ctx)
	d := keyData{Key: ks, Source: store.SourceLabel(ks.Source), Storage: store.SourceLabel(ks.Storage)}
	if err != nil {
		d.KeyErr = store.ErrorMessage(err)
	}
	return d
}

func (h *Handler) keyPage(w http.ResponseWriter, r *http.Request, req *request) error {
	h.render(w, r, req, http.StatusOK, "key", view{Title: "Stripe key", Notice: doneText(r), Data: h.keyData(r.Context())})
	return nil
}

// updateKey sets the Stripe key from the form: the same validation, Stripe
// check, LIVE confirmation and step-up code as the console (all in
// store.SetStripeKey). The key is never echoed back: a refused form is
// shown empty again.
func (h *Handler) updateKey(w http.ResponseWriter, r *http.Request, req *request) error {
	key := r.PostFormValue("key")
	_, info, err := store.ParseStripeKey(key)
	if err == nil && info.Mode == store.ModeLive && strings.TrimSpace(r.PostFormValue("live")) != "LIVE" {
		err = &store.Error{Code: store.CodeInvalid, Msg: "this is a LIVE key (" + info.Masked + "): real money moves with it; type LIVE in capital letters to confirm"}
	}
	if err == nil && strings.TrimSpace(r.PostFormValue("code")) == "" {
		err = &store.Error{Code: store.CodeInvalid, Msg: "type the current code from your authenticator app"}
	}
	if err == nil {
		var st store.KeyStatus
		st, err = h.st.SetStripeKey(r.Context(), req.actor, store.SetKeyRequest{
			Key:         key,
			ConfirmLive: info.Mode == store.ModeLive,
			Code:        r.PostFormValue("code"),
		})
		if err == nil {
			done := "key-updated"
			if st.Warning != "" {
				done = "key-unchecked"
			}
			http.Redirect(w, r, h.base+"key?done="+done, http.StatusSeeOther)
			return nil
		}
	}
	h.render(w, r, req, statusOf(err), "key", view{Title: "Stripe key", Error: store.ErrorMessage(err), Data: h.keyData(r.Context())})
	return nil
}

// --- audit log ----------------------------------------------------------------------

// auditForm is the audit filter as typed (shown back in the form, and
// carried by the paging links and the export form).
type auditForm struct {
	Actor, Action, Since, Until, Q string
}

func (f auditForm) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"actor": f.Actor, "action": f.Action, "since": f.Since, "until": f.Until, "q": f.Q} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// parseDay reads a date (2006-01-02) or a minute (2006-01-02T15:04, as a
// datetime-local input sends it), in UTC.
func parseDay(s string) (time.Time, bool, error) {
	if s == "" {
		return time.Time{}, false, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, true, nil
	}
	if t, err := time.Parse("2006-01-02T15:04", s); err == nil {
		return t, false, nil
	}
	return time.Time{}, false, &store.Error{Code: store.CodeInvalid, Msg: "dates are YYYY-MM-DD (UTC), such as 2026-11-27"}
}

// auditFilter reads the audit filter of a request (query or form).
func auditFilter(get func(string) string) (auditForm, store.AuditQuery, error) {
	f := auditForm{
		Actor:  clip(strings.TrimSpace(get("actor")), 64),
		Action: clip(strings.TrimSpace(get("action")), 64),
		Since:  strings.TrimSpace(get("since")),
		Until:  strings.TrimSpace(get("until")),
		Q:      clip(strings.TrimSpace(get("q")), 200),
	}
	q := store.AuditQuery{Actor: f.Actor, ActionPrefix: f.Action, Search: f.Q}
	var err error
	if q.Since, _, err = parseDay(f.Since); err != nil {
		return f, q, err
	}
	var day bool
	if q.Until, day, err = parseDay(f.Until); err != nil {
		return f, q, err
	}
	if day {
		q.Until = q.Until.AddDate(0, 0, 1) // the whole day named
	}
	return f, q, nil
}

type auditData struct {
	Form          auditForm
	Actions       []string
	Rows          []store.Event
	Newer, Older  string
	FilterApplied bool
}

// auditPageSize is how many audit rows a page shows.
const auditPageSize = 50

func (h *Handler) auditPage(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	qv := r.URL.Query()
	form, q, filterErr := auditFilter(qv.Get)
	d := auditData{Form: form, FilterApplied: form != auditForm{}}
	if filterErr != nil {
		h.render(w, r, req, statusOf(filterErr), "audit", view{Title: "Audit log", Error: store.ErrorMessage(filterErr), Data: d})
		return nil
	}
	var err error
	if d.Actions, err = h.st.AuditActions(ctx); err != nil {
		return err
	}
	before, _ := strconv.ParseInt(qv.Get("before"), 10, 64)
	after, _ := strconv.ParseInt(qv.Get("after"), 10, 64)
	hasNewer, hasOlder := false, false
	q.Limit = auditPageSize + 1
	if after > 0 {
		q.AfterID = after
		if d.Rows, err = h.st.ListAudit(ctx, q); err != nil {
			return err
		}
		if len(d.Rows) > auditPageSize {
			d.Rows, hasNewer = d.Rows[1:], true
		}
		hasOlder = true
	} else {
		q.BeforeID = before
		if d.Rows, err = h.st.ListAudit(ctx, q); err != nil {
			return err
		}
		if len(d.Rows) > auditPageSize {
			d.Rows, hasOlder = d.Rows[:auditPageSize], true
		}
		hasNewer = before > 0
	}
	if n := len(d.Rows); n > 0 {
		if hasNewer {
			v := form.values()
			v.Set("after", strconv.FormatInt(d.Rows[0].ID, 10))
			d.Newer = h.base + "audit?" + v.Encode()
		}
		if hasOlder {
			v := form.values()
			v.Set("before", strconv.FormatInt(d.Rows[n-1].ID, 10))
			d.Older = h.base + "audit?" + v.Encode()
		}
	} else if hasNewer {
		d.Newer = h.base + "audit?" + form.values().Encode()
	}
	h.render(w, r, req, http.StatusOK, "audit", view{Title: "Audit log", Data: d})
	return nil
}

// exportTimeout bounds an export download (the server's write timeout is
// too short for a large log).
const exportTimeout = 10 * time.Minute

// exportAudit downloads the audit rows matching the filter (admins), as
// store.ExportAudit writes them (itself audited audit.exported).
func (h *Handler) exportAudit(w http.ResponseWriter, r *http.Request, req *request) error {
	_, q, err := auditFilter(r.PostFormValue)
	if err != nil {
		return err
	}
	format := r.PostFormValue("format")
	ctype := "text/csv; charset=utf-8"
	switch format {
	case store.FormatCSV:
	case store.FormatJSONL:
		ctype = "application/x-ndjson"
	default:
		return &store.Error{Code: store.CodeInvalid, Msg: "choose csv or jsonl"}
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(exportTimeout))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), exportTimeout)
	defer cancel()
	lw := &lazyWriter{w: w, start: func() {
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Disposition", `attachment; filename="backroom-audit-`+h.now().UTC().Format("20060102-150405")+`.`+format+`"`)
	}}
	if _, err := h.st.ExportAudit(ctx, req.actor, lw, format, q); err != nil {
		if lw.started {
			// Half a file was sent: cut the connection, so that the
			// download fails visibly rather than looks complete.
			h.log.Error("web admin: audit export failed midway", "err", err)
			panic(http.ErrAbortHandler)
		}
		return err
	}
	if !lw.started {
		lw.start()
		lw.started = true
		w.WriteHeader(http.StatusOK)
	}
	return nil
}

// lazyWriter sets the download's headers at the first byte, so that an
// error before any (no right, bad filter) can still be a page.
type lazyWriter struct {
	w       http.ResponseWriter
	start   func()
	started bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.start()
		l.started = true
	}
	return l.w.Write(p)
}
