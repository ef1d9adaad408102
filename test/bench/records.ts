import { newId } from '../../src/domain/id.ts';
import type { MessageRecord } from '../../src/domain/records.ts';

/** The data shapes every phase uses: room names, senders and bodies of a fixed size. */

export const roomName = (i: number): string => `room-${i}`;

/** The one room the catch-up phase fills. */
export const REPLAY_ROOM = 'replay';

/** Distinct senders the load is spread over (a per-sender rate limit should never bite). */
export const SENDERS = 1000;

export const senderName = (i: number): string => `bench-${i % SENDERS}`;

/**
 * A body of exactly `bytes` ASCII bytes that starts with the time it was made (ms, 3 decimals),
 * so that a receiver can tell how long it travelled.
 */
export function bodyText(sentAtMs: number, bytes: number): string {
  const head = `${sentAtMs.toFixed(3)} `;
  return head.length >= bytes ? head.slice(0, bytes) : head + 'x'.repeat(bytes - head.length);
}

/** The send time a body was made with, or NaN. */
export const sentAtOf = (body: string): number => parseFloat(body);

/** A record as the server would publish it for a POST (see src/domain/records.ts messageRecord). */
export function logRecord(room: string, i: number, bodyBytes: number, now = Date.now()): MessageRecord {
  return { kind: 'message', id: newId(now), room, sender: senderName(i), body: bodyText(now, bodyBytes), createdAt: now };
}

/** The frame the chat server pushes for a stored message (src/hub/hub.ts messageFrame). */
export function messageFrame(m: { id: string; room: string; sender: string; body: string; createdAt: string; seq: number }): string {
  return `{"type":"message",${JSON.stringify(m).slice(1)}`;
}
