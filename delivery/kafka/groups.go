package kafka

import (
	"context"
	"fmt"
	"sort"

	kafkago "github.com/segmentio/kafka-go"
)

// GroupState is a consumer group as the brokers see it: its members, the
// partitions each holds, and how far each partition's committed offset is
// behind the newest record.
type GroupState struct {
	// Group is the group's name without the deployment's prefix.
	Group string
	// Topic is the topic it consumes, without the prefix.
	Topic   string
	State   string
	Members []GroupMember
	Lag     []PartitionLag
}

// GroupMember is one consumer of a group: one node running the role.
type GroupMember struct {
	ID         string
	ClientID   string
	Host       string
	Partitions []int
}

// PartitionLag is one partition's committed offset (-1 when the group
// committed none), its end offset, and the records between them.
type PartitionLag struct {
	Partition int
	Committed int64
	End       int64
	Lag       int64
}

// Groups describes the consumer groups named in topics (group -> topic it
// consumes), in the order of their names. It only reads cluster metadata
// and offsets; it joins no group and moves no offset.
func (l *Log) Groups(ctx context.Context, topics map[string]string) ([]GroupState, error) {
	names := make([]string, 0, len(topics))
	for g := range topics {
		names = append(names, g)
	}
	sort.Strings(names)
	full := make([]string, len(names))
	for i, g := range names {
		full[i] = l.name(g)
	}
	desc, err := l.client.DescribeGroups(ctx, &kafkago.DescribeGroupsRequest{GroupIDs: full})
	if err != nil {
		return nil, fmt.Errorf("kafka: describe groups: %w", err)
	}
	byName := map[string]kafkago.DescribeGroupsResponseGroup{}
	for _, g := range desc.Groups {
		byName[g.GroupID] = g
	}
	partitions := make([]int, l.cfg.Partitions)
	for p := range partitions {
		partitions[p] = p
	}
	ends := map[string]map[int]int64{} // topic -> partition -> end offset
	endOf := func(topic string) (map[int]int64, error) {
		if e, ok := ends[topic]; ok {
			return e, nil
		}
		reqs := make([]kafkago.OffsetRequest, len(partitions))
		for i, p := range partitions {
			reqs[i] = kafkago.LastOffsetOf(p)
		}
		res, err := l.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
		if err != nil {
			return nil, fmt.Errorf("kafka: list offsets of %s: %w", topic, err)
		}
		e := map[int]int64{}
		for _, po := range res.Topics[topic] {
			if po.Error != nil {
				return nil, fmt.Errorf("kafka: list offsets of %s/%d: %w", topic, po.Partition, po.Error)
			}
			e[po.Partition] = po.LastOffset
		}
		ends[topic] = e
		return e, nil
	}

	out := make([]GroupState, 0, len(names))
	for i, g := range names {
		topic := l.name(topics[g])
		st := GroupState{Group: g, Topic: topics[g]}
		if d, ok := byName[full[i]]; ok {
			if d.Error != nil {
				return nil, fmt.Errorf("kafka: describe group %s: %w", full[i], d.Error)
			}
			st.State = d.GroupState
			for _, m := range d.Members {
				gm := GroupMember{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost}
				for _, t := range m.MemberAssignments.Topics {
					if t.Topic == topic {
						gm.Partitions = append(gm.Partitions, t.Partitions...)
					}
				}
				sort.Ints(gm.Partitions)
				st.Members = append(st.Members, gm)
			}
			sort.Slice(st.Members, func(a, b int) bool { return st.Members[a].Host+st.Members[a].ID < st.Members[b].Host+st.Members[b].ID })
		}
		committed, err := l.client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: full[i], Topics: map[string][]int{topic: partitions}})
		if err != nil {
			return nil, fmt.Errorf("kafka: committed offsets of %s: %w", full[i], err)
		}
		end, err := endOf(topic)
		if err != nil {
			return nil, err
		}
		have := map[int]int64{}
		for _, p := range committed.Topics[topic] {
			have[p.Partition] = p.CommittedOffset
		}
		for _, p := range partitions {
			c, ok := have[p]
			if !ok {
				c = -1
			}
			lag := end[p]
			if c >= 0 {
				lag = end[p] - c
			}
			if lag < 0 {
				lag = 0
			}
			st.Lag = append(st.Lag, PartitionLag{Partition: p, Committed: c, End: end[p], Lag: lag})
		}
		out = append(out, st)
	}
	return out, nil
}
