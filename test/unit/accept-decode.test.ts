import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createAcceptor } from '../../src/accept.ts';
import { createMarkRead } from '../../src/mark-read.ts';
import { RateLimiter } from '../../src/auth/rate-limit.ts';
import { RoomAccess } from '../../src/auth/rooms.ts';
import { keyedId } from '../../src/domain/id.ts';
import { decodeRecord } from '../../src/domain/records.ts';
import { AppError } from '../../src/errors.ts';

/**
 * One rule for accepting and storing: every shape the acceptor answers 202 for must decode as a
 * message on every node, and be that same message. (A token `sub` with a lone surrogate used to
 * be accepted and then skipped by every node.)
 */
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('what the acceptor accepts, the log decoder stores', () => {
  // Any UTF-16 code unit, lone surrogates included, plus the characters the rules single out.
  const unit = fc.oneof(
    fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
    fc.constantFrom('a', 'é', '😀', '\u202e', '\u200b', '\u200d', '\ufeff', '\u0000', '\ud800', '\udc00'),
  );
  const text = fc.string({ unit, minLength: 0, maxLength: 70 });
  const input = fc.record(
    {
      room: fc.oneof(fc.constantFrom('r', 'general', 'a.b:c-d_e'), text),
      sender: text,
      body: fc.oneof(text, fc.constant('x')),
      key: fc.oneof(fc.constantFrom('k', 'k-1_A'), text),
      id: fc.oneof(fc.constantFrom('k', 'k-1_A'), text), // the deprecated name of key
    },
    { requiredKeys: ['room', 'body'] },
  );

  it('for open mode (sender in the body) and token mode (sender from sub)', async () => {
    const published: Buffer[] = [];
    const accept = createAcceptor({ publish: async (b) => void published.push(b), limiter: new RateLimiter(1_000_000_000), maxMessageBytes: 4096 });
    // The property below must not hold only because everything is refused: a plain post is accepted.
    await expect(accept({ room: 'r', sender: 'ana', body: 'x' }, undefined)).resolves.toMatchObject({ status: 'accepted', sender: 'ana' });
    expect(decodeRecord(published[0]!)).toMatchObject({ status: 'ok', record: { kind: 'message', room: 'r', sender: 'ana', body: 'x' } });
    await fc.assert(
      fc.asyncProperty(input, fc.option(text, { nil: undefined }), async (msg, sub) => {
        published.length = 0;
        const principal = sub === undefined ? undefined : { sub, rooms: RoomAccess.parse(['*'])!, exp: 2 ** 40 };
        const body = principal ? { ...msg, sender: undefined } : msg;
        let accepted;
        try {
          accepted = await accept(body, principal);
        } catch (err) {
          expect(err).toBeInstanceOf(AppError);
          expect(published).toHaveLength(0);
          return;
        }
        expect(published).toHaveLength(1);
        const decoded = decodeRecord(published[0]!);
        expect(decoded.status).toBe('ok');
        expect(decoded).toMatchObject({ record: { kind: 'message', id: accepted.id, room: msg.room, body: msg.body, sender: accepted.sender } });
        // `id` is the deprecated name of `key`: never stored as given, always derived from (sender, key)
        const key = msg.key ?? msg.id;
        expect(accepted.key).toBe(key);
        if (key !== undefined) expect(accepted.id).toBe(keyedId(accepted.sender, key));
        else expect(accepted.id).toMatch(UUID_V7);
      }),
      { numRuns: 500 },
    );
  });

  it('read markers too: a token sub the decoder would refuse is refused at intake, a valid one decodes', async () => {
    const published: Buffer[] = [];
    const markRead = createMarkRead({ publish: async (b) => void published.push(b), limiter: new RateLimiter(1000) });
    const rooms = RoomAccess.parse(['*'])!;
    await expect(markRead({ room: 'r', seq: 3 }, { sub: 'x\ud800', rooms, exp: 2 ** 40 })).rejects.toMatchObject({ code: 'validation_failed' });
    await expect(markRead({ room: 'r', seq: 3 }, { sub: 'ana\u202e', rooms, exp: 2 ** 40 })).rejects.toMatchObject({ code: 'validation_failed' });
    expect(published).toHaveLength(0);
    await expect(markRead({ room: 'r', seq: 3 }, { sub: 'ana', rooms, exp: 2 ** 40 })).resolves.toEqual({ room: 'r', user: 'ana', seq: 3, status: 'accepted' });
    expect(decodeRecord(published[0]!)).toMatchObject({ status: 'ok', record: { kind: 'read', user: 'ana', room: 'r', seq: 3 } });
  });

  it('a sender or sub with a bidirectional override or a zero-width space is refused; ZWJ emoji are not', async () => {
    const accept = createAcceptor({ publish: async () => {}, limiter: new RateLimiter(1000), maxMessageBytes: 4096 });
    await expect(accept({ room: 'r', sender: 'ana\u202egpj.exe', body: 'x' }, undefined)).rejects.toMatchObject({ code: 'validation_failed' });
    await expect(accept({ room: 'r', sender: 'a\u200bna', body: 'x' }, undefined)).rejects.toMatchObject({ code: 'validation_failed' });
    await expect(accept({ room: 'r', sender: '👩‍👩‍👧', body: 'x' }, undefined)).resolves.toMatchObject({ status: 'accepted' });
    await expect(accept({ room: 'r', body: 'x' }, { sub: 'x\ud800', rooms: RoomAccess.parse(['*'])!, exp: 2 ** 40 })).rejects.toBeInstanceOf(AppError);
  });
});
