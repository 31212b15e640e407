package tui

import (
	"context"
	"os"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"backroom/store"
)

// TestScreenshot writes a frame of the console, in colour, to the file
// named by BACKROOM_SCREENSHOT (the Taskfile's screenshot task turns it into
// the README's picture). Without the variable it only checks that the
// frame renders.
func TestScreenshot(t *testing.T) {
	st, c := openStore(t)
	addMember(t, st, "alice", true, false)
	c.Advance(3*time.Minute + 14*time.Second)
	addMember(t, st, "bob", false, false)
	ctx := context.Background()
	c.Advance(26 * time.Minute)
	if _, err := st.SetStripeKey(ctx, cliActor, store.SetKeyRequest{Key: "sk_live_51HxExampleExampleExample0042"}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{store.ActionSessionStart, store.ActionSessionEnd} {
		c.Advance(7*time.Minute + 31*time.Second)
		if err := st.Audit(ctx, sshActor("bob", store.RoleStaff), a, "bob", store.Detail{"fingerprint": "SHA256:example"}); err != nil {
			t.Fatal(err)
		}
	}
	h := newHarness(t, c, Options{Store: st, Actor: sshActor("alice", store.RoleAdmin), Renderer: testRenderer(true), Width: 100, Height: 26})
	h.send(tea.WindowSizeMsg{Width: 100, Height: 26})
	h.keys("3")
	frame := h.frame()
	h.mustSee("Backroom", "alice", "key.updated", "LIVE")
	if path := os.Getenv("BACKROOM_SCREENSHOT"); path != "" {
		if err := os.WriteFile(path, []byte(frame+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
