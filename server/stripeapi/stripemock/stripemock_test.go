package stripemock

import (
	"net/http"
	"testing"
)

// TestStart starts stripe-mock and asks it for a customer list.
func TestStart(t *testing.T) {
	t.Parallel()
	base := Start(t)
	req, _ := http.NewRequest("GET", base+"/v1/customers?limit=1", nil)
	req.Header.Set("Authorization", "Bearer "+probeKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Stripe-Mock-Version") == "" {
		t.Fatalf("GET /v1/customers: %s, Stripe-Mock-Version %q", resp.Status, resp.Header.Get("Stripe-Mock-Version"))
	}
}
