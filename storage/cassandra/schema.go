package cassandra

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/parleychat/parley/chat"
)

// bucketSize is how many seqs share one partition of events or messages:
// a conversation's log is split into partitions of at most 4096 events, so
// no partition grows without bound (Discord's message-store layout, with
// seqs in place of snowflake times).
const bucketSize = 4096

func bucketOf(seq int64) int64 {
	if seq < 0 {
		return 0
	}
	return seq / bucketSize
}

// schema is applied in order at Open; every statement is idempotent.
// Values that the domain encodes as JSON elsewhere (events, messages,
// memberships, attachments, the conversation snapshot) are stored as JSON
// text next to the columns that queries and fencing need.
//
//	conversations     last_seq and the committed snapshot (state); older
//	                  versions also wrote last_ts and pending here
//	partition_owners  ((partition)) -> epoch of the partition's writer, taken
//	                  by LWT (Own); last_ts, the newest claim's timestamp; and
//	                  pending, the ref of the newest claimed batch, each
//	                  claim an LWT conditioned on the epoch and on fences;
//	                  refused (gateway -> refusal floor, unix ns) and
//	                  fences (bumped by each Refuse); claimed (gateway ->
//	                  the latest Deadline claimed, unix ns, set by claims)
//	partition_claims  ((partition, epoch)) -> the epoch's newest batch (ref,
//	                  body), recorded before its claim, TTL; ref is the
//	                  epoch, the batch's timestamp and random bits
//	events          ((conversation_id, bucket), seq DESC)
//	event_positions ((conversation_id, bucket), position): position -> seq
//	message_events  ((conversation_id, message_id), seq): later events carrying
//	                a message (its created event is at the message's seq)
//	messages        ((conversation_id, bucket), seq DESC)
//	message_ids     ((conversation_id, message_id)) -> seq
//	memberships     ((user_id), conversation_id)
//	conversation_members ((conversation_id), user_id): the active members,
//	                written when a change starts or ends a membership
//	send_dedups     ((conversation_id, sender_id), client_id) -> message_id,
//	                TTL; a sender's records share a partition, so a batch
//	                of sends is checked in one query
//	partition_heads ((partition)) -> head, written at timestamp head
//	meta            ((key)) -> value, set-if-absent by LWT
//	attachments     ((id)) -> record
//	users           ((user_id)) -> claimed_name, set_name (profiles); each
//	                write sets one column, so a claim never replaces a
//	                set name and no write reads first
//	conversation_settings ((user_id), conversation_id) -> settings, a
//	                member's own, apart from the membership row the
//	                sequencer rewrites
//	devices         ((user_id), device_id) -> device; written by LWT, so
//	                PutDevice tells new from replaced
func schema(keyspace string, replication int) []string {
	stmts := []string{
		fmt.Sprintf(`CREATE KEYSPACE IF NOT EXISTS %s WITH replication = {'class': 'SimpleStrategy', 'replication_factor': %d}`, keyspace, replication),
		`CREATE TABLE IF NOT EXISTS %s.conversations (
			id text PRIMARY KEY,
			last_seq bigint,
			last_ts bigint,
			state text,
			pending text)`,
		`CREATE TABLE IF NOT EXISTS %s.partition_owners (
			partition int PRIMARY KEY,
			epoch bigint,
			last_ts bigint,
			pending text,
			fences bigint,
			refused map<text, bigint>,
			claimed map<text, bigint>)`,
		// Tables made before refusals get their columns (an existing
		// column is not an error: see applySchema).
		`ALTER TABLE %s.partition_owners ADD fences bigint`,
		`ALTER TABLE %s.partition_owners ADD refused map<text, bigint>`,
		`ALTER TABLE %s.partition_owners ADD claimed map<text, bigint>`,
		`CREATE TABLE IF NOT EXISTS %s.partition_claims (
			partition int,
			epoch bigint,
			ref text,
			body text,
			PRIMARY KEY ((partition, epoch)))`,
		`CREATE TABLE IF NOT EXISTS %s.events (
			conversation_id text,
			bucket bigint,
			seq bigint,
			position bigint,
			type text,
			data text,
			PRIMARY KEY ((conversation_id, bucket), seq)
		) WITH CLUSTERING ORDER BY (seq DESC)`,
		`CREATE TABLE IF NOT EXISTS %s.event_positions (
			conversation_id text,
			bucket bigint,
			position bigint,
			seq bigint,
			PRIMARY KEY ((conversation_id, bucket), position))`,
		`CREATE TABLE IF NOT EXISTS %s.message_events (
			conversation_id text,
			message_id text,
			seq bigint,
			PRIMARY KEY ((conversation_id, message_id), seq))`,
		`CREATE TABLE IF NOT EXISTS %s.messages (
			conversation_id text,
			bucket bigint,
			seq bigint,
			data text,
			PRIMARY KEY ((conversation_id, bucket), seq)
		) WITH CLUSTERING ORDER BY (seq DESC)`,
		`CREATE TABLE IF NOT EXISTS %s.message_ids (
			conversation_id text,
			message_id text,
			seq bigint,
			PRIMARY KEY ((conversation_id, message_id)))`,
		`CREATE TABLE IF NOT EXISTS %s.memberships (
			user_id text,
			conversation_id text,
			data text,
			PRIMARY KEY ((user_id), conversation_id))`,
		`CREATE TABLE IF NOT EXISTS %s.conversation_members (
			conversation_id text,
			user_id text,
			PRIMARY KEY ((conversation_id), user_id))`,
		`CREATE TABLE IF NOT EXISTS %s.send_dedups (
			conversation_id text,
			sender_id text,
			client_id text,
			message_id text,
			PRIMARY KEY ((conversation_id, sender_id), client_id))`,
		`CREATE TABLE IF NOT EXISTS %s.partition_heads (
			partition int PRIMARY KEY,
			head bigint)`,
		`CREATE TABLE IF NOT EXISTS %s.meta (
			key text PRIMARY KEY,
			value text)`,
		`CREATE TABLE IF NOT EXISTS %s.attachments (
			id text PRIMARY KEY,
			data text)`,
		`CREATE TABLE IF NOT EXISTS %s.users (
			user_id text PRIMARY KEY,
			claimed_name text,
			set_name text)`,
		`CREATE TABLE IF NOT EXISTS %s.conversation_settings (
			user_id text,
			conversation_id text,
			data text,
			PRIMARY KEY ((user_id), conversation_id))`,
		`CREATE TABLE IF NOT EXISTS %s.devices (
			user_id text,
			device_id text,
			data text,
			PRIMARY KEY ((user_id), device_id))`,
	}
	for i := 1; i < len(stmts); i++ {
		stmts[i] = fmt.Sprintf(stmts[i], keyspace)
	}
	return stmts
}

// applySchema creates the keyspace and tables that are missing.
func (s *Store) applySchema(ctx context.Context, keyspace string, replication int) error {
	for _, stmt := range schema(keyspace, replication) {
		if err := s.schemaStatement(ctx, stmt); err != nil {
			if strings.HasPrefix(stmt, "ALTER TABLE") && (strings.Contains(err.Error(), "already exists") || strings.Contains(err.Error(), "conflicts with an existing column")) {
				continue
			}
			name := strings.Fields(stmt)
			return fmt.Errorf("cassandra: schema: %s: %w", strings.Join(name[:min(len(name), 6)], " "), classify("cassandra: schema", err))
		}
	}
	return nil
}

// schemaAttempts bounds the tries of one schema statement: under load a
// node applies a schema change more slowly than the request timeout (it
// waits for its schema to settle), and finishes it meanwhile. Every
// statement is idempotent, so it is sent again.
const schemaAttempts = 5

func (s *Store) schemaStatement(ctx context.Context, stmt string) error {
	var err error
	for attempt := 0; attempt < schemaAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(time.Second):
			}
		}
		err = s.session.Query(stmt).WithContext(ctx).Exec()
		if err == nil || chat.ErrorCode(classify("", err)) != chat.CodeUnavailable {
			return err
		}
	}
	return err
}
