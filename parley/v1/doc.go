// Package parleyv1 is the Go code generated from parley.proto, the schema
// of Parley's binary realtime protocol (WebSocket subprotocol
// "parley.v1+proto"). The schema is published for client authors: Swift,
// Kotlin and other apps generate their own code from parley.proto.
//
// parley.pb.go is generated and committed, so builds need no protoc;
// `make proto` (deploy/tools/protoc) regenerates it after a schema change.
package parleyv1

//go:generate ../../deploy/tools/protoc
