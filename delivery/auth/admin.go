package auth

import (
	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/chat"
)

// AdminClaim is the JWT claim that makes a token an operator's: a token
// whose "admin" claim is the JSON value true may read the admin view
// (nodes, roles, connections, consumer lag, partition owners, recent
// errors). Any other value, or none, is an ordinary user's token.
const AdminClaim = "admin"

// VerifyAdmin checks token as Verify does, then requires the admin claim.
// An invalid token is a *chat.Error with code unauthorized; a valid token
// without the claim is forbidden.
func (v *Verifier) VerifyAdmin(token string) (chat.User, error) {
	user, _, err := v.Verify(token)
	if err != nil {
		return chat.User{}, err
	}
	// The signature and the registered claims were checked by Verify;
	// reading the claims again without verifying is safe here.
	var c jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		return chat.User{}, unauthorized("invalid token", jwt.ErrTokenMalformed)
	}
	if admin, _ := c[AdminClaim].(bool); !admin {
		return chat.User{}, &chat.Error{Code: chat.CodeForbidden, Op: "auth.admin", Message: "this token has no admin claim"}
	}
	return user, nil
}
