package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"backroom/store"
	"backroom/tui"
)

// --- clients ------------------------------------------------------------------------

// clientsForm is the clients filter as typed.
type clientsForm struct {
	Q, Live, Delinquent, Deleted, Sort string
	Desc                               bool
}

func (f clientsForm) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"q": f.Q, "live": f.Live, "delinquent": f.Delinquent, "deleted": f.Deleted, "sort": f.Sort} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if f.Desc {
		v.Set("desc", "1")
	}
	return v
}

type clientsData struct {
	Form       clientsForm
	Page       store.ClientPage
	Prev, Next string
}

// clientsPageSize is how many clients a page shows.
const clientsPageSize = 50

// yesNo reads a two-way filter: yes, no, or nil for either.
func yesNo(v string, yes, no string) *bool {
	switch v {
	case yes:
		return ptr(true)
	case no:
		return ptr(false)
	}
	return nil
}

func ptr(b bool) *bool { return &b }

// clientsPage lists clients a keyset page at a time (the console's query:
// a trigram search, flag filters, a sort), never counting a big table.
func (h *Handler) clientsPage(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	qv := r.URL.Query()
	f := clientsForm{
		Q: clip(strings.TrimSpace(qv.Get("q")), 200), Live: qv.Get("live"), Delinquent: qv.Get("delinquent"),
		Deleted: qv.Get("deleted"), Sort: qv.Get("sort"), Desc: qv.Get("desc") == "1",
	}
	q := store.ClientQuery{
		Search: f.Q, Livemode: yesNo(f.Live, "live", "test"), Delinquent: yesNo(f.Delinquent, "yes", "no"),
		Sort: f.Sort, Desc: f.Desc, Limit: clientsPageSize,
	}
	switch f.Deleted {
	case "show":
	case "only":
		q.Deleted = ptr(true)
	default:
		f.Deleted = ""
		q.Deleted = ptr(false) // the console's default: deleted clients on request only
	}
	after, before := qv.Get("after"), qv.Get("before")
	for _, c := range []struct {
		id  string
		dst **store.Client
	}{{after, &q.After}, {before, &q.Before}} {
		if c.id == "" {
			continue
		}
		cl, err := h.st.GetClient(ctx, c.id)
		if err != nil {
			return &store.Error{Code: store.CodeInvalid, Msg: "that page of clients no longer exists: start from the first page"}
		}
		*c.dst = &cl
	}
	page, err := h.st.ListClients(ctx, q)
	if err != nil {
		return err
	}
	d := clientsData{Form: f, Page: page}
	if n := len(page.Clients); n > 0 {
		hasPrev, hasNext := after != "", page.More
		if before != "" {
			hasPrev, hasNext = page.More, true
		}
		if hasPrev {
			v := f.values()
			v.Set("before", page.Clients[0].CustomerID)
			d.Prev = h.base + "clients?" + v.Encode()
		}
		if hasNext {
			v := f.values()
			v.Set("after", page.Clients[n-1].CustomerID)
			d.Next = h.base + "clients?" + v.Encode()
		}
	}
	h.render(w, r, req, http.StatusOK, "clients", view{Title: "Clients", Data: d})
	return nil
}

type clientData struct {
	Client  store.Client
	Billing []store.BillingEvent
	Audit   []store.Event
}

// clientPage shows one client; the view is audited (client.viewed), as in
// the console.
func (h *Handler) clientPage(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	id := r.PathValue("cus")
	if err := store.ValidCustomerID(id); err != nil {
		return err
	}
	c, err := h.st.ViewClient(ctx, req.actor, id)
	if err != nil {
		return err
	}
	d := clientData{Client: c}
	if d.Billing, err = h.st.BillingEvents(ctx, id, 20); err != nil {
		return err
	}
	if d.Audit, err = h.st.ClientAudit(ctx, id, 20); err != nil {
		return err
	}
	h.render(w, r, req, http.StatusOK, "client", view{Title: c.CustomerID, Nav: "clients", Data: d})
	return nil
}

// --- webhooks -----------------------------------------------------------------------

type webhooksForm struct {
	Status, Type, Q string
}

func (f webhooksForm) values() url.Values {
	v := url.Values{}
	v.Set("status", f.Status)
	if f.Type != "" {
		v.Set("type", f.Type)
	}
	if f.Q != "" {
		v.Set("q", f.Q)
	}
	return v
}

type webhooksData struct {
	Form         webhooksForm
	Events       []store.WebhookEvent
	Newer, Older string
}

// webhooksPageSize is how many events a page shows.
const webhooksPageSize = 50

// webhooksPage lists stored events, failed ones by default (those that
// await review), newest first, a keyset page at a time.
func (h *Handler) webhooksPage(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	qv := r.URL.Query()
	f := webhooksForm{Status: qv.Get("status"), Type: clip(strings.TrimSpace(qv.Get("type")), 100), Q: clip(strings.TrimSpace(qv.Get("q")), 100)}
	if f.Status == "" {
		f.Status = store.WebhookFailed
	}
	q := store.WebhookQuery{Status: f.Status, Type: f.Type, Search: f.Q, Limit: webhooksPageSize + 1}
	if f.Status == "all" {
		q.Status = ""
	}
	before, _ := strconv.ParseInt(qv.Get("before"), 10, 64)
	after, _ := strconv.ParseInt(qv.Get("after"), 10, 64)
	var err error
	d := webhooksData{Form: f}
	hasNewer, hasOlder := before > 0, false
	if after > 0 {
		q.AfterID = after
		hasNewer, hasOlder = false, true
	} else {
		q.BeforeID = before
	}
	if d.Events, err = h.st.ListWebhooks(ctx, q); err != nil {
		return err
	}
	if len(d.Events) > webhooksPageSize {
		if after > 0 {
			d.Events, hasNewer = d.Events[1:], true
		} else {
			d.Events, hasOlder = d.Events[:webhooksPageSize], true
		}
	}
	if n := len(d.Events); n > 0 {
		if hasNewer {
			v := f.values()
			v.Set("after", strconv.FormatInt(d.Events[0].ID, 10))
			d.Newer = h.base + "webhooks?" + v.Encode()
		}
		if hasOlder {
			v := f.values()
			v.Set("before", strconv.FormatInt(d.Events[n-1].ID, 10))
			d.Older = h.base + "webhooks?" + v.Encode()
		}
	}
	h.render(w, r, req, http.StatusOK, "webhooks", view{Title: "Webhooks", Data: d})
	return nil
}

type webhookData struct {
	Event     store.WebhookEvent
	Attempts  []store.WebhookAttempt
	Payload   string
	Truncated bool
	CanReplay bool
	ReplayURL string
}

// maxPayloadShown bounds the payload shown on the page.
const maxPayloadShown = 64 << 10

func (h *Handler) webhookPage(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	id := r.PathValue("evt")
	ev, err := h.st.GetWebhook(ctx, id)
	if err != nil {
		return err
	}
	d := webhookData{Event: ev, CanReplay: h.cfg.WebhookProcessor != nil,
		ReplayURL: h.base + "webhooks/" + url.PathEscape(ev.EventID) + "/replay"}
	if d.Attempts, err = h.st.WebhookAttempts(ctx, id); err != nil {
		return err
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, ev.Payload, "", "  ") == nil {
		d.Payload = pretty.String()
	} else {
		d.Payload = string(ev.Payload)
	}
	if len(d.Payload) > maxPayloadShown {
		d.Payload, d.Truncated = clip(d.Payload, maxPayloadShown), true
	}
	h.render(w, r, req, http.StatusOK, "webhook", view{Title: ev.EventID, Nav: "webhooks", Notice: doneText(r), Data: d})
	return nil
}

// replayWebhook processes a stored event again (audited webhook.replayed).
func (h *Handler) replayWebhook(w http.ResponseWriter, r *http.Request, req *request) error {
	if h.cfg.WebhookProcessor == nil {
		return &store.Error{Code: store.CodeConflict, Msg: "replay is not available on this server"}
	}
	id := r.PathValue("evt")
	outcome, err := h.st.ReplayWebhook(r.Context(), req.actor, id, h.cfg.WebhookProcessor)
	if err != nil {
		return err
	}
	http.Redirect(w, r, h.base+"webhooks/"+url.PathEscape(id)+"?done=replay-"+url.QueryEscape(outcome), http.StatusSeeOther)
	return nil
}

// --- sessions (admins) ------------------------------------------------------------------

type sessionsData struct {
	Web     []store.WebSession
	SSH     []tui.SessionInfo
	HasSSH  bool
	You     string
	Members []memberSessions // who has live sessions, by name
}

// memberSessions counts one member's live sessions, for ending them all
// at once (a lost laptop, someone leaving).
type memberSessions struct {
	Name     string
	Web, SSH int
}

func (h *Handler) sessionsPage(w http.ResponseWriter, r *http.Request, req *request) error {
	d := sessionsData{You: req.ws.ID, HasSSH: h.cfg.SSH != nil}
	var err error
	if d.Web, err = h.st.ListWebSessions(r.Context()); err != nil {
		return err
	}
	if h.cfg.SSH != nil {
		d.SSH = h.cfg.SSH.List()
	}
	counts := map[string]*memberSessions{}
	member := func(name string) *memberSessions {
		if counts[name] == nil {
			counts[name] = &memberSessions{Name: name}
		}
		return counts[name]
	}
	for _, ws := range d.Web {
		member(ws.Name).Web++
	}
	for _, ss := range d.SSH {
		member(ss.User).SSH++
	}
	for _, m := range counts {
		d.Members = append(d.Members, *m)
	}
	slices.SortFunc(d.Members, func(a, b memberSessions) int { return strings.Compare(a.Name, b.Name) })
	h.render(w, r, req, http.StatusOK, "sessions", view{Title: "Sessions", Notice: doneText(r), Data: d})
	return nil
}

// endSession ends one web or SSH session, or every session of a member
// (admins; each audited session.terminated). Ending one's own web session
// signs out.
func (h *Handler) endSession(w http.ResponseWriter, r *http.Request, req *request) error {
	id := r.PostFormValue("id")
	switch r.PostFormValue("kind") {
	case "member":
		return h.endMemberSessions(w, r, req, r.PostFormValue("name"))
	case "web":
		if err := h.st.EndWebSession(r.Context(), req.actor, id); err != nil {
			return err
		}
		if id == req.ws.ID {
			h.setCookie(w, sessionCookie, "", -1)
			http.Redirect(w, r, h.base+"signin?done=signed-out", http.StatusSeeOther)
			return nil
		}
	case "ssh":
		if h.cfg.SSH == nil {
			return &store.Error{Code: store.CodeNotFound, Msg: "that session has already ended"}
		}
		if err := h.cfg.SSH.End(r.Context(), req.actor, id); err != nil {
			return err
		}
	default:
		return &store.Error{Code: store.CodeInvalid, Msg: "no session named"}
	}
	http.Redirect(w, r, h.base+"sessions?done=session-ended", http.StatusSeeOther)
	return nil
}

// endMemberSessions ends every web and SSH session of the member name.
func (h *Handler) endMemberSessions(w http.ResponseWriter, r *http.Request, req *request, name string) error {
	if name == "" {
		return &store.Error{Code: store.CodeInvalid, Msg: "no member named: choose a member from the list of sessions"}
	}
	ended := 0 // the route is for admins; the registry and the store check again
	if h.cfg.SSH != nil {
		for _, ss := range h.cfg.SSH.List() {
			if ss.User != name {
				continue
			}
			err := h.cfg.SSH.End(r.Context(), req.actor, ss.ID)
			if store.ErrorCode(err) == store.CodeNotFound {
				continue // it ended meanwhile
			}
			if err != nil {
				return err
			}
			ended++
		}
	}
	n, err := h.st.EndWebSessionsOf(r.Context(), req.actor, name, "all sessions ended by "+req.actor.Name)
	if err != nil {
		return err
	}
	if ended+n == 0 {
		return &store.Error{Code: store.CodeNotFound, Msg: "that member has no live sessions"}
	}
	if name == req.ws.Name {
		h.setCookie(w, sessionCookie, "", -1)
		http.Redirect(w, r, h.base+"signin?done=signed-out", http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, r, h.base+"sessions?done=member-sessions-ended", http.StatusSeeOther)
	return nil
}
