// Type declarations of @parleychat/client (parley-client.js). The wire
// types follow docs/api/openapi.yaml and docs/api/asyncapi.yaml; the
// package's tests check that every export of the module is declared here.

/** The three realtime transports, in the order `auto` falls back through them. */
export declare const TRANSPORTS: readonly ['websocket', 'sse', 'longpoll'];
export type Transport = (typeof TRANSPORTS)[number];
/** Display names of the transports. */
export declare const TRANSPORT_NAMES: Readonly<Record<Transport, string>>;
/** Every frame type the server sends on the stream. */
export declare const EVENT_TYPES: readonly EventType[];

export type DurableEventType =
  | 'message.created' | 'message.updated' | 'message.deleted'
  | 'reaction.added' | 'reaction.removed'
  | 'member.added' | 'member.removed'
  | 'conversation.updated' | 'read.updated';
export type EventType = 'ready' | DurableEventType | 'typing' | 'presence' | 'user.updated' | 'error';

/** The error codes of the API (openapi.yaml Error), plus the client's own
 * `network` and `aborted` (status 0) and `http_<status>` for a body without one. */
export type ErrorCode =
  | 'invalid_request' | 'unauthorized' | 'forbidden' | 'not_found' | 'conflict'
  | 'cursor_expired' | 'too_large' | 'rate_limited' | 'unavailable' | 'internal'
  | 'method_not_allowed' | 'not_acceptable' | 'unsupported_media_type'
  | 'network' | 'aborted' | (string & {});

/** An error answer from the API, or a network failure (status 0). */
export declare class ApiError extends Error {
  constructor(status: number, code: ErrorCode, message?: string, options?: { requestId?: string; retryAfter?: number | null });
  readonly name: 'ApiError';
  /** HTTP status; 0 when the server could not be reached. */
  status: number;
  code: ErrorCode;
  /** The server's request id (also the X-Request-Id header); quote it in bug reports. */
  requestId: string;
  /** Seconds to wait, from Retry-After, or null. */
  retryAfter: number | null;
  /** Worth trying again later with the same request (and client_id). */
  readonly retryable: boolean;
}

export interface User { id: string; name: string }

export interface Attachment {
  id: string;
  name: string;
  content_type: string;
  size: number;
  thumbnail?: boolean;
}

export interface Message {
  id: string;
  conversation_id: string;
  seq: number;
  sender_id: string;
  client_id: string;
  text: string;
  attachments: Attachment[];
  reply_to: string | null;
  /** Emoji → the users who reacted with it. */
  reactions: Record<string, string[]>;
  created_at: string;
  edited_at: string | null;
  deleted: boolean;
  version: number;
}

export interface Conversation {
  id: string;
  kind: 'direct' | 'group';
  title: string;
  created_by: string;
  created_at: string;
  /** Present only while member_count is at most 256. */
  members?: string[];
  member_count: number;
  last_seq: number;
  read_seq: number;
  unread: number;
  muted: boolean;
  last_message: Message | null;
}

/** A durable event: carries a seq (per conversation) and, on the stream, a cursor. */
export interface DurableEvent {
  type: DurableEventType;
  conversation_id: string;
  seq: number;
  event_id: string;
  at: string;
  actor: string;
  cursor?: string;
  message?: Message;
  message_id?: string;
  emoji?: string;
  user_id?: string;
  conversation?: Conversation;
  read_seq?: number;
}

export interface TypingEvent { type: 'typing'; conversation_id: string; user_id: string }
export interface PresenceEvent { type: 'presence'; user_id: string; online: boolean }
export interface UserUpdatedEvent { type: 'user.updated'; user: User }
/** What the 'event' listener receives. */
export type StreamEvent = DurableEvent | TypingEvent | PresenceEvent | UserUpdatedEvent;

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'offline' | 'stopped';

export interface PendingSend {
  clientId: string;
  conversationId: string;
  text: string;
  attachments: string[];
  attachmentInfo: unknown[];
  replyTo: string | null;
}

/** The `detail` of each event ParleyClient dispatches. */
export interface ParleyClientEventMap {
  status: { state: ConnectionState; transport: Transport };
  event: StreamEvent;
  'send-pending': PendingSend;
  'send-confirmed': { clientId: string; conversationId: string; message: Message };
  /** retryable: offline, 429 or 5xx; worth sending again later with the same clientId. */
  'send-failed': { clientId: string; conversationId: string; error: ApiError; retryable: boolean };
  'cursor-expired': Record<string, never>;
  unauthorized: { error: ApiError };
}

export interface ParleyClientOptions {
  /** A bearer token (JWT) for the user. */
  token: string;
  /** The server's origin, e.g. "https://chat.example.com"; '' for the page's own. */
  baseUrl?: string;
  /** 'auto' (WebSocket, then SSE, then long-poll) or one transport. */
  transport?: Transport | 'auto';
  /** Reconnect backoff in milliseconds (full jitter). */
  backoff?: { base?: number; cap?: number };
  /**
   * After an auto-mode fallback (SSE, long-poll), WebSocket is probed again
   * after a delay in [cap/2, cap), cap doubling from base up to max
   * (milliseconds; default 2000 and 60000); the stream steps back up to
   * WebSocket, with its cursor, when a probe opens.
   */
  upgradeProbe?: { base?: number; max?: number };
  /**
   * Called, with event delivery held back, whenever the stream starts
   * without a cursor (first connect, after cursor_expired): reload state over
   * REST and call setFloor for what was loaded.
   */
  onResync?: (() => Promise<void>) | null;
}

export interface SearchOptions {
  q: string;
  conversationId?: string;
  senderId?: string;
  after?: Date | string;
  before?: Date | string;
  hasAttachment?: boolean;
  limit?: number;
  pageToken?: string;
}

export interface SearchResult { message: Message; highlights: string[] }

export interface SendOptions {
  text?: string;
  /** Attachment ids from uploadAttachment. */
  attachments?: string[];
  replyTo?: string | null;
  /** Reuse one to retry a send by hand without a duplicate. */
  clientId?: string;
  /** Whatever the application wants back in 'send-pending' (e.g. file names). */
  attachmentInfo?: unknown[];
}

/** The file-like value uploadAttachment takes (a browser File or Blob). */
export interface Uploadable { readonly size: number; readonly type?: string; readonly name?: string }

/**
 * ParleyClient talks to one Parley server as one user: REST calls, and one
 * realtime stream (start/stop) whose events it dispatches deduplicated, in
 * seq order per conversation, across reconnects and transport changes.
 */
export declare class ParleyClient extends EventTarget {
  constructor(options: ParleyClientOptions);
  token: string;
  baseUrl: string;
  /** Set by me() and by the stream's ready frame. */
  userId: string | null;
  /** The resume cursor: the stream's position after the last event delivered. */
  cursor: string | null;
  state: ConnectionState;
  transport: Transport;
  preferred: Transport | 'auto';

  addEventListener<K extends keyof ParleyClientEventMap>(type: K, listener: (ev: CustomEvent<ParleyClientEventMap[K]>) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof ParleyClientEventMap>(type: K, listener: (ev: CustomEvent<ParleyClientEventMap[K]>) => void, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;

  /** One REST call; resolves to the parsed JSON body (null for 204), rejects with ApiError. */
  request<T = any>(method: string, path: string, body?: unknown, options?: { headers?: Record<string, string>; signal?: AbortSignal }): Promise<T>;

  me(): Promise<User>;
  setName(name: string): Promise<User>;
  getUser(uid: string): Promise<User>;
  searchUsers(q: string, limit?: number): Promise<User[]>;
  /** A single-use, 60 s realtime ticket. */
  ticket(): Promise<string>;

  listConversations(): Promise<Conversation[]>;
  getConversation(cid: string): Promise<Conversation>;
  createConversation(options: { kind?: 'direct' | 'group'; title?: string; members?: string[] }): Promise<Conversation>;
  renameConversation(cid: string, title: string): Promise<Conversation>;
  addMember(cid: string, uid: string): Promise<Conversation>;
  removeMember(cid: string, uid: string): Promise<null>;
  listMembers(cid: string, options?: { after?: string; limit?: number }): Promise<{ members: string[]; next_after: string | null }>;
  listMessages(cid: string, options?: { before?: number; after?: number; limit?: number }): Promise<{ messages: Message[]; has_more: boolean }>;
  listEvents(cid: string, options?: { after?: number; limit?: number }): Promise<{ events: DurableEvent[]; has_more: boolean }>;
  /** Edits a message; with version, only if it is still that version (If-Match). */
  editMessage(cid: string, mid: string, text: string, version?: number | null): Promise<Message>;
  deleteMessage(cid: string, mid: string): Promise<null>;
  addReaction(cid: string, mid: string, emoji: string): Promise<null>;
  removeReaction(cid: string, mid: string, emoji: string): Promise<null>;
  /** The members of a conversation online now. */
  presence(cid: string): Promise<string[]>;
  search(options: SearchOptions): Promise<{ results: SearchResult[]; next_page_token: string | null }>;
  /** Marks read up to seq; resolves to false when seq is not past what was sent. */
  markRead(cid: string, seq: number): Promise<boolean>;
  /** Says "typing", at most once every 3 s; resolves to whether it was sent. */
  typing(cid: string): Promise<boolean>;

  /**
   * Sends optimistically: 'send-pending' at once, then exactly one of
   * 'send-confirmed' or 'send-failed'. Resolves to the stored message, or
   * null when it failed or was already confirmed.
   */
  send(cid: string, options?: SendOptions): Promise<Message | null>;
  /** Whether a send with this client_id is in flight right now (the outbox asks before retrying). */
  isSending(clientId: string): boolean;
  uploadAttachment(file: Uploadable, options?: { onProgress?: (loaded: number, total: number) => void; signal?: AbortSignal }): Promise<Attachment>;
  /** An attachment (or its thumbnail) as a Blob, for an object URL. */
  fetchAttachment(id: string, options?: { thumbnail?: boolean; signal?: AbortSignal }): Promise<Blob>;

  /** Starts the realtime stream and keeps it up until stop(). */
  start(): void;
  stop(): void;
  /** Switches transport, reconnecting with the cursor (nothing lost or repeated). */
  setTransport(pref: Transport | 'auto'): void;
  /** Drops the connection and reconnects at once with the cursor. */
  reconnectNow(): void;
  /** The application already has a conversation's events up to seq: drop the stream's copies. */
  setFloor(cid: string, seq: number): void;
  /** The highest seq of a conversation delivered or set by setFloor (0 if none). */
  floor(cid: string): number;
}

/** Development sign-in, where the server allows it: {token, user}. */
export declare function devSignIn(userId: string, name?: string, options?: { baseUrl?: string }): Promise<{ token: string; user: User }>;
/** A fresh client_id for an optimistic send. */
export declare function newClientId(): string;
/** Full-jitter exponential backoff: a random delay in [0, min(cap, base·2^attempt)) ms. */
export declare function backoffDelay(attempt: number, options?: { base?: number; cap?: number; random?: () => number }): number;
