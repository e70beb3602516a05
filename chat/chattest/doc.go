// Package chattest holds the contract test suites of chat's ports
// (TestStore, TestLog, …). Every adapter of a port runs that port's suite
// against a real instance, so the embedded and the distributed adapter are
// held to one behaviour: a difference between them is a bug in one of them.
package chattest
