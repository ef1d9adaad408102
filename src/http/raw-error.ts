import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import type { AppError } from '../errors.ts';

/**
 * Answers on a raw socket (before or outside Node's HTTP response objects: refused upgrades,
 * parser errors such as 431) with the same JSON error body as every other refusal, then closes.
 */
export function writeRawError(socket: Duplex, err: AppError): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(err.toJSON());
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    Connection: 'close',
    ...err.headers,
  };
  const head = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n');
  socket.once('error', () => socket.destroy());
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ''}\r\n${head}\r\n\r\n${body}`);
}
