package chat

import "context"

type assignmentKey struct{}

// WithAssignment marks ctx as belonging to one assignment of a consumer
// group's partitions (Kafka's group generation). A Log's Consume passes
// such a ctx to handle, so that a handler can tell a partition it kept
// from one it lost and got back: between two assignments another member
// may have owned the partition and changed what the handler remembers.
func WithAssignment(ctx context.Context, id int64) context.Context {
	return context.WithValue(ctx, assignmentKey{}, id)
}

// Assignment returns the assignment WithAssignment put in ctx, 0 if none
// (a Log whose partitions never move between members, such as the
// embedded one).
func Assignment(ctx context.Context) int64 {
	id, _ := ctx.Value(assignmentKey{}).(int64)
	return id
}
