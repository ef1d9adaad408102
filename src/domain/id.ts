import { randomFillSync } from 'node:crypto';

// Randomness is drawn in blocks: one crypto call per 409 ids instead of one per id.
const POOL = Buffer.alloc(4096);
let used = POOL.length;

/**
 * A UUIDv7 (RFC 9562): 48 bits of epoch milliseconds, then randomness, so ids sort by creation
 * time and never collide across nodes without coordination.
 */
export function newId(now = Date.now()): string {
  if (used + 10 > POOL.length) {
    randomFillSync(POOL);
    used = 0;
  }
  const b = Buffer.allocUnsafe(16);
  b.writeUIntBE(now, 0, 6);
  POOL.copy(b, 6, used, used + 10);
  used += 10;
  b[6] = (b[6]! & 0x0f) | 0x70; // version 7
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
