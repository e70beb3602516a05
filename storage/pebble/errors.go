package pebble

import (
	"context"
	"errors"
	"syscall"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleychat/parley/chat"
)

// classify translates err, an error of op, at the adapter's edge into
// the domain's codes (chat.DispositionOf turns them into statuses):
//
//   - already classified (not found, conflict, a closed store): as it is;
//   - a done context: unavailable (chat.ContextError);
//   - the disk refusing work (full, out of quota, read-only, an I/O
//     error, out of file descriptors): unavailable, since the node may
//     recover once an operator frees space or the disk comes back;
//   - corruption: internal, since retrying never helps;
//   - anything else: as it is, which is internal.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *chat.Error
	switch {
	case errors.As(err, &ce):
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return chat.ContextError(op, err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "the store's disk is full", Err: err}
	case errors.Is(err, syscall.EROFS), errors.Is(err, pebble.ErrReadOnly):
		return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "the store's disk is read-only", Err: err}
	case errors.Is(err, syscall.EIO):
		return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "the store's disk failed to read or write", Err: err}
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "the store ran out of file descriptors", Err: err}
	case pebble.IsCorruptionError(err):
		return &chat.Error{Code: chat.CodeInternal, Op: op, Message: "the store's data is corrupt", Err: err}
	}
	return err
}
