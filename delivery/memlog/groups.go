package memlog

// PartitionLag is one partition of a consumer group: the next offset the
// group will handle and the offset the topic's next record gets; End minus
// Next is the records the group has yet to handle.
type PartitionLag struct {
	Partition int
	Next      int64
	End       int64
}

// Lag reports how far the consumer group is behind on the topic, per
// partition, and how many members it has now. ok is false when the group
// has never consumed the topic in this process. It neither creates nor
// changes anything.
func (l *Log) Lag(topicName, groupName string) (lag []PartitionLag, members int, ok bool) {
	t, found := (*l.topics.Load())[topicName]
	if !found {
		return nil, 0, false
	}
	t.mu.Lock()
	g, found := t.groups[groupName]
	t.mu.Unlock()
	if !found {
		return nil, 0, false
	}
	g.mu.Lock()
	members = len(g.members)
	g.mu.Unlock()
	lag = make([]PartitionLag, len(t.parts))
	for p, pt := range t.parts {
		lag[p] = PartitionLag{Partition: p, Next: g.committed.pos[p].Load(), End: pt.next.Load()}
	}
	return lag, members, true
}
