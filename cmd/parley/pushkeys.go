package main

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
)

// pushKeys prints a new VAPID key pair and a new webhook secret as the
// environment lines that configure them, for an operator to keep: Web
// Push subscriptions are made for the public key, so it must stay the same
// for as long as they should keep working.
func pushKeys(stdout io.Writer) error {
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("push-keys: %w", err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("push-keys: %w", err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	fmt.Fprintf(stdout, "PARLEY_PUSH_VAPID_PUBLIC_KEY=%s\n", b64(key.PublicKey().Bytes()))
	fmt.Fprintf(stdout, "PARLEY_PUSH_VAPID_PRIVATE_KEY=%s\n", b64(key.Bytes()))
	fmt.Fprintf(stdout, "PARLEY_PUSH_WEBHOOK_SECRET=whsec_%s\n", base64.StdEncoding.EncodeToString(secret))
	return nil
}
