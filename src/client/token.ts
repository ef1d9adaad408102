/** The `exp` claim (epoch seconds) of a JWT, without verifying it (the server does that), or undefined. */
export function tokenExpiry(token: string): number | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeBase64(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp : undefined;
  } catch {
    return undefined;
  }
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

// atob is missing on older React Native engines; JWT payloads are ASCII JSON in practice.
function decodeBase64(s: string): string {
  const atob = (globalThis as { atob?: (s: string) => string }).atob;
  if (atob) return atob(s);
  let out = '';
  let bits = 0;
  let acc = 0;
  for (const ch of s) {
    if (ch === '=') break;
    const v = ALPHABET.indexOf(ch);
    if (v < 0) throw new Error('bad base64');
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += String.fromCharCode((acc >> bits) & 0xff);
    }
  }
  return out;
}

/** How long before `exp` to refresh: a fifth of the remaining life, at most a minute, at least a second. */
export function refreshDelayMs(expSeconds: number, now = Date.now()): number {
  const left = expSeconds * 1000 - now;
  return Math.max(0, left - Math.max(1000, Math.min(60_000, left / 5)));
}
