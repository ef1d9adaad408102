import { createHash, randomFillSync } from 'node:crypto';

// Randomness is drawn in blocks: one crypto call per 409 ids instead of one per id.
const POOL = Buffer.alloc(4096);
let used = POOL.length;

// RFC 9562 §6.2 method 1: the 12 bits after the version are a counter, so ids made in the same
// millisecond still sort in the order they were made. Seeded randomly each millisecond with its
// top bit clear (at least 2048 ids per millisecond before it carries into the timestamp).
let lastMs = -1;
let counter = 0;

/**
 * A UUIDv7 (RFC 9562): 48 bits of epoch milliseconds, a 12-bit counter, then randomness, so ids
 * sort by creation time (within this process also inside one millisecond, and if the clock
 * steps back) and never collide across nodes without coordination.
 */
export function newId(now = Date.now()): string {
  if (used + 10 > POOL.length) {
    randomFillSync(POOL);
    used = 0;
  }
  if (now > lastMs) {
    lastMs = now;
    counter = POOL.readUInt16BE(used) & 0x7ff;
  } else if (++counter > 0xfff) {
    // Counter exhausted within one millisecond: borrow the next one.
    lastMs++;
    counter = POOL.readUInt16BE(used) & 0x7ff;
  }
  const b = Buffer.allocUnsafe(16);
  b.writeUIntBE(lastMs, 0, 6);
  b.writeUInt16BE(0x7000 | counter, 6); // version 7, then the counter
  POOL.copy(b, 8, used + 2, used + 10);
  used += 10;
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const uuid = (b: Buffer, version: number): string => {
  b[6] = (b[6]! & 0x0f) | (version << 4);
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
};

/**
 * The id of a message posted with an idempotency key: a UUIDv8 (RFC 9562, custom) made of the
 * SHA-256 of (sender, key), so every retry of the same post, on any node, gets the same id (and
 * the store keeps one copy), while two senders using the same key get different ids.
 */
export function keyedId(sender: string, key: string): string {
  // NUL cannot occur in a sender (control characters are refused), so the pair is unambiguous.
  const digest = createHash('sha256').update(`chat-catchup/key/v1\0${sender}\0${key}`, 'utf8').digest();
  return uuid(digest.subarray(0, 16), 8);
}
