import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { encodeTextFrame, PreparedFrame } from '../../src/hub/prepared-frame.ts';

/** ws's own framing (exported at runtime, absent from @types/ws). */
const { Sender } = createRequire(import.meta.url)('ws') as { Sender: { frame(data: Buffer, options: Record<string, unknown>): Buffer[] } };

describe('a frame serialised once for many sockets', () => {
  it('has the bytes ws itself writes for an unmasked, uncompressed text frame, at every length encoding', () => {
    for (const n of [0, 1, 125, 126, 127, 65_535, 65_536, 70_000]) {
      const payload = Buffer.alloc(n, 'x');
      const wsFrame = Buffer.concat(Sender.frame(payload, { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false }));
      expect(encodeTextFrame(payload).equals(wsFrame), `length ${n}`).toBe(true);
    }
  });

  it('is encoded once, however many sockets write it', () => {
    const f = new PreparedFrame(Buffer.from('{"type":"message"}'));
    expect(f.wire).toBe(f.wire);
    expect(f.wire.subarray(2).toString()).toBe('{"type":"message"}');
  });
});
