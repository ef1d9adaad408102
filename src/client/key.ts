const CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789';

/**
 * A fresh idempotency key: 22 random characters of [a-z0-9] (~113 bits), from crypto.getRandomValues
 * where the platform has it (browsers, Node; React Native with a polyfill), else Math.random.
 */
export function newKey(): string {
  const bytes = new Uint8Array(22);
  const crypto = (globalThis as { crypto?: { getRandomValues?(a: Uint8Array): Uint8Array } }).crypto;
  if (crypto?.getRandomValues) crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  let s = '';
  for (const b of bytes) s += CHARS[b % CHARS.length];
  return s;
}
