package revoke_test

import (
	"context"
	"fmt"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/revoke"
)

// A List is the revocation set of a single instance: give it to the
// Verifier as Config.Revocations, and record logouts with Revoke.
func ExampleList() {
	revs := &revoke.List{TTL: time.Hour} // the longest access token lifetime
	cfg := keygate.Config{Revocations: revs}
	_ = cfg // ...Issuer, Audiences, Keys; then keygate.NewVerifier(cfg)

	ctx := context.Background()
	loggedIn := time.Now().Add(-time.Minute)
	revs.Revoke(ctx, revoke.Revocation{Kind: revoke.Session, Value: "session-1", Source: "backchannel_logout"})
	revs.Revoke(ctx, revoke.Revocation{Kind: revoke.Subject, Value: "user-2", Source: "admin"}) // every token issued until now

	for _, p := range []*keygate.Principal{
		{Subject: "user-1", SessionID: "session-1", IssuedAt: loggedIn},
		{Subject: "user-1", SessionID: "session-3", IssuedAt: loggedIn},
		{Subject: "user-2", SessionID: "session-4", IssuedAt: loggedIn},
		{Subject: "user-2", SessionID: "session-5", IssuedAt: time.Now().Add(time.Minute)},
	} {
		fmt.Println(p.Subject, p.SessionID, revs.Revoked(p))
	}
	// Output:
	// user-1 session-1 true
	// user-1 session-3 false
	// user-2 session-4 true
	// user-2 session-5 false
}

// FirstUse refuses a replayed logout token.
func ExampleList_FirstUse() {
	var revs revoke.List
	ctx := context.Background()
	exp := time.Now().Add(2 * time.Minute) // the logout token's exp
	first, _ := revs.FirstUse(ctx, "logout-token-jti", exp)
	again, _ := revs.FirstUse(ctx, "logout-token-jti", exp)
	fmt.Println(first, again)
	// Output: true false
}
