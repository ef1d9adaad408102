/**
 * A text frame serialised once for every socket that gets it: its payload, and (built on first
 * use) the whole unmasked WebSocket frame as it goes on the wire (RFC 6455 §5.2: FIN + text
 * opcode, the payload length, no mask from a server, no compression: this server turns
 * permessage-deflate off). A socket writes the wire bytes as they are, instead of having ws
 * build a header and two writes per socket.
 */
export class PreparedFrame {
  readonly payload: Buffer;
  private encoded: Buffer | undefined;

  constructor(payload: Buffer) {
    this.payload = payload;
  }

  get wire(): Buffer {
    return (this.encoded ??= encodeTextFrame(this.payload));
  }
}

export function encodeTextFrame(payload: Buffer): Buffer {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + n);
  out[0] = 0x81; // FIN, opcode 1 (text)
  if (n < 126) out[1] = n;
  else if (n < 65536) {
    out[1] = 126;
    out.writeUInt16BE(n, 2);
  } else {
    out[1] = 127;
    out.writeUInt32BE(Math.floor(n / 2 ** 32), 2);
    out.writeUInt32BE(n >>> 0, 6);
  }
  payload.copy(out, head);
  return out;
}
