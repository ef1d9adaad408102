import { Hono } from 'hono';
import { z } from 'zod';
import { messageInputSchema, roomSchema, userSchema } from '../domain/message.ts';
import { ERRORS, type ErrorCode } from '../errors.ts';
import { markReadSchema } from '../mark-read.ts';
import { CLOSE, LIMITS } from '../protocol.ts';
import { VERSION } from '../version.ts';

/**
 * The API documents: GET /openapi.json (OpenAPI 3.1, HTTP) and GET /asyncapi.json (AsyncAPI 3,
 * the WebSocket protocol). Request bodies come from the very zod schemas that validate them
 * (z.toJSONSchema of messageInputSchema); error responses from the one catalogue (errors.ts), so
 * a status and its codes cannot drift apart. test/api-docs.test.ts validates both documents with
 * real parsers and drives a real request for each documented operation and error code.
 */

const json = (schema: z.ZodType) => z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
const strip = (s: Record<string, unknown>) => {
  const { $schema: _, ...rest } = s;
  return rest;
};

const wireMessage = z.object({
  id: z.string(),
  room: roomSchema,
  sender: userSchema,
  body: z.string(),
  createdAt: z.string().describe('ISO 8601 UTC with milliseconds: when the accepting node answered the post'),
  seq: z.number().int().min(1).describe("Stream offset + 1: the log position, identical on every node. THE cursor, kept per room"),
  key: z.string().optional().describe('The idempotency key the sender gave, if any'),
});
const accepted = z.object({ id: z.string().describe('Derived from (sender, key) when the post carried a key (or its deprecated name `id`), else a UUIDv7'), room: z.string(), sender: z.string(), createdAt: z.string(), key: z.string().optional(), status: z.literal('accepted') });
const sincePage = z.object({ messages: z.array(wireMessage), next: z.number().int(), hasMore: z.boolean(), epoch: z.string().nullable() });
const beforePage = z.object({
  messages: z.array(wireMessage).describe('Ascending seq'),
  prev: z.number().int().nullable().describe('The smallest seq in the page: pass it as `before` for the next (older) page'),
  hasMore: z.boolean(),
  head: z.number().int().describe("The room's latest seq on this node"),
  epoch: z.string().nullable(),
});
const roomSummary = z.object({
  room: z.string(),
  head: z.number().int(),
  lastMessage: wireMessage.nullable(),
  lastRead: z.number().int().describe('0 when the user has no marker in the room'),
  unread: z.number().int().describe("Messages after lastRead that others sent (exact up to 10,000)"),
  unreadCapped: z.boolean().optional(),
});
const roomsPage = z.object({ rooms: z.array(roomSummary).describe('Newest activity first'), next: z.string().optional().describe('Pass as `after` for the next page') });
const readAccepted = z.object({ room: z.string(), user: z.string(), seq: z.number().int(), status: z.literal('accepted') });
/** POST /rooms/{room}/read's body: the marker's validating schema, the room coming from the path (if given in the body it must be equal). */
const readBody = markReadSchema.extend({ room: roomSchema.optional().describe('Optional: the path gives it') });
/** Routes that take `Authorization: Bearer` in token mode. */
const SECURED = ['/message', '/messages/since', '/messages/before', '/rooms', '/rooms/{room}/read', '/rooms/{room}/presence', '/metrics'];

/** Every route this document describes, with the error codes each can answer (what the test drives). */
export const DOCUMENTED: Record<string, Partial<Record<'get' | 'post', { summary: string; errors: ErrorCode[] }>>> = {
  '/message': {
    post: {
      summary: 'Post a message; 202 once the broker confirmed it durably',
      errors: ['invalid_json', 'validation_failed', 'unauthorized', 'forbidden', 'sender_mismatch', 'too_large', 'unsupported_media_type', 'idempotency_conflict', 'rate_limited', 'broker_unavailable'],
    },
  },
  '/messages/since': {
    get: { summary: 'Catch up from a cursor (after) or a time (since), ascending seq', errors: ['validation_failed', 'unauthorized', 'forbidden', 'epoch_mismatch'] },
  },
  '/messages/before': { get: { summary: 'Scrollback: the page of a room before a seq (newest page first, ascending within)', errors: ['validation_failed', 'unauthorized', 'forbidden'] } },
  '/rooms': { get: { summary: "The user's conversation list, newest activity first, with unread counts", errors: ['validation_failed', 'unauthorized', 'forbidden', 'sender_mismatch'] } },
  '/rooms/{room}/read': {
    post: {
      summary: 'Mark the room read up to seq; 202 once the broker confirmed it (every node applies it)',
      errors: ['invalid_json', 'validation_failed', 'unauthorized', 'forbidden', 'sender_mismatch', 'too_large', 'unsupported_media_type', 'rate_limited', 'broker_unavailable'],
    },
  },
  '/rooms/{room}/presence': { get: { summary: 'Users with a socket subscribed to the room on any node', errors: ['validation_failed', 'unauthorized', 'forbidden'] } },
  '/healthz': { get: { summary: 'Liveness, with the version', errors: [] } },
  '/readyz': { get: { summary: 'Readiness: database open, broker connected and consuming', errors: ['not_ready'] } },
  '/metrics': { get: { summary: 'Prometheus text exposition (Bearer METRICS_TOKEN when set)', errors: ['unauthorized'] } },
  '/openapi.json': { get: { summary: 'This document', errors: [] } },
  '/asyncapi.json': { get: { summary: 'The WebSocket protocol (AsyncAPI 3)', errors: [] } },
  '/demo': { get: { summary: 'The demo chat page (DEMO_PAGE=on, the default)', errors: [] } },
  '/demo/app.js': { get: { summary: "The demo page's script (bundled on first request)", errors: [] } },
  '/ws': { get: { summary: 'The WebSocket endpoint: a plain GET is refused (see /asyncapi.json)', errors: ['upgrade_required'] } },
};

const errorSchema = (codes: ErrorCode[]) => ({
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string', enum: codes }, message: { type: 'string' } },
      additionalProperties: true,
    },
  },
});

function errorResponses(codes: ErrorCode[]): Record<string, unknown> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) byStatus.set(ERRORS[code].status, [...(byStatus.get(ERRORS[code].status) ?? []), code]);
  const out: Record<string, unknown> = {};
  for (const [status, list] of byStatus) {
    out[String(status)] = {
      description: list.map((c) => `\`${c}\`: ${ERRORS[c].message}`).join(' '),
      ...(status === 429 || status === 503 ? { headers: { 'Retry-After': { schema: { type: 'integer' }, description: 'Seconds to wait before retrying' } } } : {}),
      content: { 'application/json': { schema: errorSchema(list) } },
    };
  }
  return out;
}

const ok = (description: string, schema: Record<string, unknown>, type = 'application/json') => ({ description, content: { [type]: { schema } } });
const q = (name: string, description: string, schema: Record<string, unknown>, required = false) => ({ name, in: 'query', required, description, schema });

export function openApiDocument(maxMessageBytes: number): Record<string, unknown> {
  const op = (path: string, method: 'get' | 'post', extra: Record<string, unknown>, success: Record<string, unknown>) => {
    const d = DOCUMENTED[path]![method]!;
    const security = SECURED.includes(path) ? { security: [{}, { bearer: [] }] } : {};
    return { summary: d.summary, ...security, ...extra, responses: { ...success, ...errorResponses(d.errors) } };
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'chat-catchup HTTP API',
      version: VERSION,
      description:
        'Group chat with exact offline catch-up. Errors are always JSON: {"error": {"code", "message", ...details}}. With AUTH_SECRET set, the routes marked with bearer security require `Authorization: Bearer <token>` (HS256 JWT: sub, rooms, exp); unset (open mode) they need none. The WebSocket protocol is in /asyncapi.json.',
    },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    paths: {
      '/message': {
        post: op(
          '/message',
          'post',
          {
            parameters: [{ name: 'Idempotency-Key', in: 'header', required: false, description: 'Same as the body `key` (if both are given they must be equal)', schema: { type: 'string', pattern: LIMITS.key.source } }],
            requestBody: { required: true, content: { 'application/json': { schema: strip(json(messageInputSchema(maxMessageBytes))) } } },
          },
          { '202': ok('Accepted: durably in the log; it will be stored and pushed', strip(json(accepted))) },
        ),
      },
      '/messages/since': {
        get: op(
          '/messages/since',
          'get',
          {
            description: 'Exactly one of `after` and `since`. Page with after=next until hasMore is false: every stored message exactly once.',
            parameters: [
              q('room', 'Only this room; without it all rooms (the token\'s rooms in token mode)', { type: 'string', pattern: LIMITS.room.source }),
              q('after', 'A seq: messages with a greater seq (exact resume). The cursor is per room.', { type: 'integer', minimum: 0 }),
              q('since', 'ISO 8601 or epoch MILLISECONDS (not seconds): createdAt >= since', { type: 'string' }),
              q('limit', '1-1000, default 100', { type: 'integer', minimum: 1, maximum: 1000, default: 100 }),
              q('epoch', 'The epoch of the page the cursor came from (409 epoch_mismatch if the log was re-created)', { type: 'string' }),
            ],
          },
          { '200': ok('A page, ascending seq', strip(json(sincePage))) },
        ),
      },
      '/messages/before': {
        get: op(
          '/messages/before',
          'get',
          {
            description: 'Page with before=prev until hasMore is false: every stored message of the room exactly once. Cost is independent of the room size.',
            parameters: [
              q('room', 'The room', { type: 'string', pattern: LIMITS.room.source }, true),
              q('before', 'A seq: messages with a smaller seq; omitted = from the newest', { type: 'integer', minimum: 0 }),
              q('limit', '1-1000, default 50', { type: 'integer', minimum: 1, maximum: 1000, default: 50 }),
            ],
          },
          { '200': ok('A page, ascending seq', strip(json(beforePage))) },
        ),
      },
      '/rooms': {
        get: op(
          '/rooms',
          'get',
          {
            description: 'In token mode the token subject\'s rooms (only those the token allows); in open mode `user` is required.',
            parameters: [
              q('user', 'Open mode: whose list (required); token mode: the token subject or left out', { type: 'string' }),
              q('rooms', 'Comma-separated room names (at most 200): only these', { type: 'string' }),
              q('limit', '1-200, default 50', { type: 'integer', minimum: 1, maximum: 200, default: 50 }),
              q('after', 'The `next` of the previous page', { type: 'string' }),
            ],
          },
          { '200': ok('A page of conversations', strip(json(roomsPage))) },
        ),
      },
      '/rooms/{room}/read': {
        post: op(
          '/rooms/{room}/read',
          'post',
          {
            description: 'A marker never moves backwards and is clamped to the room\'s latest message at that point of the log. Open mode: `user` is required.',
            parameters: [{ name: 'room', in: 'path', required: true, schema: { type: 'string', pattern: LIMITS.room.source } }],
            requestBody: { required: true, content: { 'application/json': { schema: strip(json(readBody)) } } },
          },
          { '202': ok('Accepted: durably in the log', strip(json(readAccepted))) },
        ),
      },
      '/rooms/{room}/presence': {
        get: op(
          '/rooms/{room}/presence',
          'get',
          { parameters: [{ name: 'room', in: 'path', required: true, schema: { type: 'string', pattern: LIMITS.room.source } }] },
          { '200': ok('The users present', strip(json(z.object({ room: z.string(), users: z.array(z.string()) })))) },
        ),
      },
      '/healthz': { get: op('/healthz', 'get', {}, { '200': ok('Running', strip(json(z.object({ status: z.literal('ok'), version: z.string() })))) }) },
      '/readyz': {
        get: op('/readyz', 'get', {}, { '200': ok('Ready', strip(json(z.object({ status: z.literal('ready'), checks: z.record(z.string(), z.unknown()) })))) }),
      },
      '/metrics': {
        get: op('/metrics', 'get', {}, { '200': ok('Prometheus text format 0.0.4', { type: 'string' }, 'text/plain') }),
      },
      '/openapi.json': { get: op('/openapi.json', 'get', {}, { '200': ok('OpenAPI 3.1 document', { type: 'object' }) }) },
      '/asyncapi.json': { get: op('/asyncapi.json', 'get', {}, { '200': ok('AsyncAPI 3 document', { type: 'object' }) }) },
      '/demo': { get: op('/demo', 'get', {}, { '200': ok('HTML page', { type: 'string' }, 'text/html') }) },
      '/demo/app.js': { get: op('/demo/app.js', 'get', {}, { '200': ok('JavaScript module', { type: 'string' }, 'text/javascript') }) },
      '/ws': { get: op('/ws', 'get', { description: 'Connect with a WebSocket client instead.' }, {}) },
    },
  };
}

/** AsyncAPI 3.0 for GET /ws: what a client sends (the server receives) and what the server sends. */
export function asyncApiDocument(maxMessageBytes: number): Record<string, unknown> {
  const frame = (type: string, fields: Record<string, z.ZodType> = {}) => strip(json(z.object({ type: z.literal(type), ...fields })));
  const room = roomSchema;
  const publishFields = strip(json(messageInputSchema(maxMessageBytes))) as { properties: Record<string, unknown>; required: string[] };
  const clientFrames: Record<string, [string, Record<string, unknown>]> = {
    subscribe: [
      'Subscribe: answered `subscribed`, then the replay (seq > after, or the last N), then live messages; each exactly once, ascending seq. Neither after nor last: live only.',
      frame('subscribe', { room, after: z.number().int().min(0).optional(), last: z.number().int().min(1).max(LIMITS.maxLast).optional(), epoch: z.string().optional() }),
    ],
    unsubscribe: ['Unsubscribe: answered `unsubscribed`.', frame('unsubscribe', { room })],
    publish: [
      'Publish: the POST /message fields; answered `accepted`, or `error` with the HTTP error codes.',
      { ...publishFields, properties: { type: { type: 'string', const: 'publish' }, ...publishFields.properties }, required: ['type', ...publishFields.required] },
    ],
    auth: ['Authenticate (browsers): the first frame within 5 s in token mode; also refreshes the token.', frame('auth', { token: z.string() })],
    ping: ['Answered `pong`.', frame('ping')],
    read: ['Mark the room read up to seq (needs a socket user).', frame('read', { room, seq: z.number().int().min(0) })],
    typing: ['Typing signal, relayed to the room on every node, never stored (needs a socket user).', frame('typing', { room })],
  };
  const message = strip(json(wireMessage)) as { properties: Record<string, unknown>; required: string[] };
  const serverFrames: Record<string, [string, Record<string, unknown>]> = {
    message: [
      'A stored message (only after it is in this node\'s SQLite).',
      { ...message, properties: { type: { type: 'string', const: 'message' }, ...message.properties }, required: ['type', ...message.required] },
    ],
    subscribed: ['Subscription confirmed: the room\'s head seq on this node and the log epoch.', frame('subscribed', { room, head: z.number().int(), epoch: z.string().nullable() })],
    unsubscribed: ['Unsubscribed.', frame('unsubscribed', { room })],
    accepted: ['A publish was confirmed by the broker.', frame('accepted', { id: z.string(), room: z.string(), sender: z.string(), createdAt: z.string(), key: z.string().optional(), status: z.literal('accepted') })],
    pong: ['Answer to ping.', frame('pong')],
    authorized: ['Token accepted (sub and exp; null in open mode).', frame('authorized', { sub: z.string().nullable(), exp: z.number().nullable() })],
    error: [
      'A refused frame; the socket stays open. Codes: the HTTP ones plus invalid_frame, unknown_type, too_many_subscriptions, not_subscribed.',
      frame('error', { code: z.enum(Object.keys(ERRORS) as [ErrorCode, ...ErrorCode[]]), message: z.string() }),
    ],
    readMarker: ['The same user\'s read marker moved (multi-device sync).', frame('read', { room, seq: z.number().int() })],
    typingSignal: ['Someone is typing.', frame('typing', { room, user: z.string() })],
    presence: ['The room\'s users, right after subscribed.', frame('presence', { room, users: z.array(z.string()) })],
    join: ['A user\'s first socket subscribed to the room anywhere.', frame('join', { room, user: z.string() })],
    leave: ['A user\'s last socket left the room.', frame('leave', { room, user: z.string() })],
  };
  const messages: Record<string, unknown> = {};
  for (const [name, [description, payload]] of [...Object.entries(clientFrames), ...Object.entries(serverFrames)]) {
    messages[name] = { name, summary: description, contentType: 'application/json', payload };
  }
  const refs = (names: string[]) => names.map((n) => ({ $ref: `#/channels/chat/messages/${n}` }));
  const closes = Object.entries(CLOSE)
    .map(([name, code]) => `${code} ${name}`)
    .join(', ');
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'chat-catchup WebSocket protocol',
      version: VERSION,
      description: `JSON text frames on GET /ws. With ?batch=1 the server may pack several frames into one WebSocket message, one per line. Close codes: ${closes}. Token mode: the token in the upgrade's Authorization header, or an auth frame within 5 s; a foreign Origin is refused with 403 when CORS_ORIGINS is set.`,
    },
    servers: { node: { host: 'localhost:3000', protocol: 'ws', description: 'A chat node (any node: they share the log)' } },
    channels: {
      chat: {
        address: '/ws',
        messages,
        bindings: {
          ws: {
            method: 'GET',
            query: {
              type: 'object',
              properties: {
                batch: { type: 'string', enum: ['1'], description: 'Accept several frames per WebSocket message, separated by \\n' },
                user: { type: 'string', description: 'Open mode: the socket\'s user (read, typing, presence)' },
              },
            },
          },
        },
      },
    },
    operations: {
      receiveClientFrames: { action: 'receive', channel: { $ref: '#/channels/chat' }, summary: 'Frames a client sends', messages: refs(Object.keys(clientFrames)) },
      sendServerFrames: { action: 'send', channel: { $ref: '#/channels/chat' }, summary: 'Frames the server sends', messages: refs(Object.keys(serverFrames)) },
    },
  };
}

/** GET /openapi.json and GET /asyncapi.json, built once. */
export function apiDocRoutes(maxMessageBytes: number): Hono {
  const openapi = JSON.stringify(openApiDocument(maxMessageBytes));
  const asyncapi = JSON.stringify(asyncApiDocument(maxMessageBytes));
  const r = new Hono();
  r.get('/openapi.json', (c) => c.body(openapi, 200, { 'Content-Type': 'application/json' }));
  r.get('/asyncapi.json', (c) => c.body(asyncapi, 200, { 'Content-Type': 'application/json' }));
  return r;
}
