// Package revoke holds revocations: tokens refused before their exp because
// their session was logged out (OpenID Connect Back-Channel Logout 1.0),
// their subject was logged out everywhere, or the token itself (jti) was
// revoked by an operator. A [Store] is both what records them ([Revoker])
// and what a [keygate.Verifier] consults on every request
// ([keygate.Revocations]).
package revoke

import (
	"context"
	"errors"
	"time"

	"github.com/keygate/keygate"
)

// Kind is what a [Revocation] matches a token on.
type Kind string

// The kinds of revocation, named after the claim they match.
const (
	// Session revokes every token whose sid equals Value.
	Session Kind = "sid"
	// Subject revokes the tokens whose sub equals Value and that were
	// issued (iat) before [Revocation.IssuedBefore].
	Subject Kind = "sub"
	// Token revokes the token whose jti equals Value.
	Token Kind = "jti"
)

// Revocation is one revoked session, subject or token.
type Revocation struct {
	Kind  Kind
	Value string
	// IssuedBefore applies to Subject: tokens with an iat before it are
	// revoked, tokens issued at or after it are not (the user may log in
	// again). A token without iat counts as issued before.
	IssuedBefore time.Time
	// At is when the revocation was recorded; Expires is when it may be
	// forgotten: by then every token it matches has expired.
	At, Expires time.Time
	// Source says where it came from, such as "backchannel_logout" or
	// "admin".
	Source string
}

// Revoker records revocations.
type Revoker interface {
	// Revoke records r. It returns once r holds for every later Verify
	// of the instance that called it; in a cluster it reaches the other
	// instances shortly after.
	Revoke(ctx context.Context, r Revocation) error
}

// Store records revocations and answers whether a token is revoked.
type Store interface {
	Revoker
	keygate.Revocations
	// List returns the revocations in force, in no particular order.
	List(ctx context.Context) ([]Revocation, error)
	// FirstUse records a logout token's jti until until and reports
	// whether it had not been recorded before: a replayed logout token is
	// refused. In a cluster the record is shared, so a token replayed to
	// another instance is refused too.
	FirstUse(ctx context.Context, jti string, until time.Time) (bool, error)
}

// ErrNotShared is matched (errors.Is) by the error of a [Revoker] that
// recorded a revocation on this instance but could not share it with the
// cluster: the other instances may keep accepting the tokens it matches
// until the store is reachable again.
var ErrNotShared = errors.New("revoke: recorded locally, not shared with the cluster")
