/**
 * The wire protocol, shared by the server and the client SDK (src/client/) so that a frame
 * cannot drift between them. Types and constants only: no imports, no I/O, nothing Node- or
 * browser-specific, so the SDK can import it and stay dependency-free.
 *
 * Frames are JSON text. With `?batch=1` on the upgrade URL the server may pack several frames
 * into one WebSocket message, one per line (BATCH_SEPARATOR).
 */

/** A stored message, everywhere it appears (HTTP pages and WebSocket `message` frames). */
export interface WireMessage {
  /** Assigned by the server, globally unique; derived from (sender, key) when the post had a key. */
  id: string;
  room: string;
  sender: string;
  body: string;
  /** ISO 8601, UTC, milliseconds: when the accepting node answered the post. */
  createdAt: string;
  /** Stream offset + 1: the position in the log, identical on every node. THE cursor, per room. */
  seq: number;
  /** The idempotency key the sender gave, if any. */
  key?: string;
}

/** The answer to a post (HTTP `202` body, WebSocket `accepted` frame without its `type`). */
export interface Accepted {
  id: string;
  room: string;
  sender: string;
  createdAt: string;
  /** Echoed when the post carried an idempotency key. */
  key?: string;
  status: 'accepted';
}

/** `{"error": {...}}` over HTTP; the same fields in a WebSocket `error` frame. */
export interface ErrorBody {
  code: string;
  message: string;
  [detail: string]: unknown;
}

// ---- client -> server ----

export interface SubscribeFrame {
  type: 'subscribe';
  room: string;
  /** Stored messages with `seq > after`, then live. */
  after?: number;
  /** The last N stored messages of the room (1-1000), then live. Not with `after`. */
  last?: number;
  /** The epoch the cursor came from; `epoch_mismatch` if the log was re-created. */
  epoch?: string;
}
export interface UnsubscribeFrame {
  type: 'unsubscribe';
  room: string;
}
export interface PublishFrame {
  type: 'publish';
  room: string;
  body: string;
  sender?: string;
  key?: string;
}
export interface AuthFrame {
  type: 'auth';
  token: string;
}
export interface PingFrame {
  type: 'ping';
}
export interface ReadFrame {
  type: 'read';
  room: string;
  seq: number;
}
export interface TypingFrame {
  type: 'typing';
  room: string;
}

export type ClientFrame = SubscribeFrame | UnsubscribeFrame | PublishFrame | AuthFrame | PingFrame | ReadFrame | TypingFrame;

// ---- server -> client ----

export type MessageFrame = { type: 'message' } & WireMessage;
export interface SubscribedFrame {
  type: 'subscribed';
  room: string;
  /** The room's latest `seq` on this node (0 if none). */
  head: number;
  /** The log's epoch (null while the node knows none). */
  epoch: string | null;
}
export interface UnsubscribedFrame {
  type: 'unsubscribed';
  room: string;
}
export type AcceptedFrame = { type: 'accepted' } & Accepted;
export interface PongFrame {
  type: 'pong';
}
export interface AuthorizedFrame {
  type: 'authorized';
  /** null in open mode */
  sub: string | null;
  /** epoch seconds; null in open mode */
  exp: number | null;
}
export type ErrorFrame = { type: 'error' } & ErrorBody;
/** The same user's read marker moved (multi-device sync). */
export interface ReadMarkerFrame {
  type: 'read';
  room: string;
  seq: number;
}
export interface TypingSignalFrame {
  type: 'typing';
  room: string;
  user: string;
}
export interface PresenceFrame {
  type: 'presence';
  room: string;
  users: string[];
}
export interface JoinLeaveFrame {
  type: 'join' | 'leave';
  room: string;
  user: string;
}

export type ServerFrame =
  | MessageFrame
  | SubscribedFrame
  | UnsubscribedFrame
  | AcceptedFrame
  | PongFrame
  | AuthorizedFrame
  | ErrorFrame
  | ReadMarkerFrame
  | TypingSignalFrame
  | PresenceFrame
  | JoinLeaveFrame;

// ---- HTTP pages ----

/** `GET /messages/since` */
export interface SincePage {
  messages: WireMessage[];
  next: number;
  hasMore: boolean;
  epoch: string | null;
}

/** `GET /messages/before` (scrollback) */
export interface BeforePage {
  messages: WireMessage[];
  /** The smallest seq in the page: pass it as `before` for the next (older) page. */
  prev: number | null;
  hasMore: boolean;
  /** The room's latest seq on this node. */
  head: number;
  epoch: string | null;
}

/** One entry of `GET /rooms` (the user's conversation list). */
export interface RoomSummary {
  room: string;
  head: number;
  lastMessage: WireMessage | null;
  lastRead: number;
  unread: number;
  unreadCapped?: boolean;
}
export interface RoomsPage {
  rooms: RoomSummary[];
  next?: string;
}

// ---- constants ----

/** WebSocket close codes the server sends (ws itself sends 1009 for oversized frames and 1007 for bad UTF-8). */
export const CLOSE = {
  goingAway: 1001,
  policy: 1008,
  tooLarge: 1009,
  /** an unexpected failure while handling this socket: contained, the socket is closed */
  internalError: 1011,
  tryAgainLater: 1013,
  unauthorized: 4401,
  /** the stream was re-created: cursors point into a log that no longer exists */
  logReset: 4409,
  tooManySockets: 4429,
} as const;

/** Separates frames packed into one WebSocket message on a `?batch=1` socket. */
export const BATCH_SEPARATOR = '\n';

/** Upgrade URL query parameters. */
export const WS_QUERY = {
  /** `batch=1`: the client accepts several frames per message. */
  batch: 'batch',
  /** Open mode: the socket's user (read markers, typing, presence). */
  user: 'user',
} as const;

/** What the server enforces, for clients to respect up front. */
export const LIMITS = {
  /** Room names: 1-64 chars of A-Z a-z 0-9 _ . : - */
  room: /^[A-Za-z0-9_.:-]{1,64}$/,
  /** Idempotency keys: 1-64 chars of A-Z a-z 0-9 _ - */
  key: /^[A-Za-z0-9_-]{1,64}$/,
  /** `last` on subscribe */
  maxLast: 1000,
  /** A typing signal is relayed at most once per user and room in this interval. */
  typingIntervalMs: 2000,
} as const;
