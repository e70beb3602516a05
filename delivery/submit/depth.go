package submit

// Queued is the number of commands waiting in the lanes for their
// appender (parley_submit_queued); it grows when the commands log is
// slower than the senders.
func (s *Submitter) Queued() int {
	n := 0
	for _, l := range s.lanes {
		n += len(l)
	}
	return n
}

// Waiting is the number of appended commands whose result has not come
// yet (parley_submit_waiting).
func (s *Submitter) Waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiting)
}
