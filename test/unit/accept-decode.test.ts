import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createAcceptor } from '../../src/accept.ts';
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
      }),
      { numRuns: 500 },
    );
  });

  it('a sender or sub with a bidirectional override or a zero-width space is refused; ZWJ emoji are not', async () => {
    const accept = createAcceptor({ publish: async () => {}, limiter: new RateLimiter(1000), maxMessageBytes: 4096 });
    await expect(accept({ room: 'r', sender: 'ana\u202egpj.exe', body: 'x' }, undefined)).rejects.toMatchObject({ code: 'validation_failed' });
    await expect(accept({ room: 'r', sender: 'a\u200bna', body: 'x' }, undefined)).rejects.toMatchObject({ code: 'validation_failed' });
    await expect(accept({ room: 'r', sender: '👩‍👩‍👧', body: 'x' }, undefined)).resolves.toMatchObject({ status: 'accepted' });
    await expect(accept({ room: 'r', body: 'x' }, { sub: 'x\ud800', rooms: RoomAccess.parse(['*'])!, exp: 2 ** 40 })).rejects.toBeInstanceOf(AppError);
  });
});
