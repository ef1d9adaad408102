/**
 * Mints a token for local use:
 *   AUTH_SECRET=... npm run token -- --sub ana --rooms 'team-*,general' [--ttl 3600]
 * Prints the token alone on stdout, so it composes: TOKEN=$(npm run -s token -- --sub ana --rooms '*')
 */
import { parseArgs } from 'node:util';
import { mintToken } from '../auth/tokens.ts';
import { RoomAccess } from '../auth/rooms.ts';

const usage = `usage: npm run -s token -- --sub <user> --rooms '<room>,<prefix>*,...' [--ttl <seconds>] [--secret <secret>]

  --sub     the user (the token's sub; becomes sender)
  --rooms   comma-separated rooms: exact names, prefix*, or * for all
  --ttl     lifetime in seconds (default 3600)
  --secret  the signing secret (default: the AUTH_SECRET environment variable)
  --help    this text

Prints the token alone on stdout: TOKEN=$(npm run -s token -- --sub ana --rooms '*')`;

function fail(message: string): never {
  process.stderr.write(`${message}\n${usage}\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({ options: { sub: { type: 'string' }, rooms: { type: 'string' }, ttl: { type: 'string', default: '3600' }, secret: { type: 'string' }, help: { type: 'boolean', short: 'h' } } }));
} catch (err) {
  fail((err as Error).message);
}
if (values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
const secret = values.secret ?? process.env.AUTH_SECRET;
if (!secret) fail('AUTH_SECRET is not set (or pass --secret).');
if (!values.sub) fail('--sub is required.');
if (values.rooms === undefined) fail('--rooms is required.');
const rooms = values.rooms.split(',').map((r) => r.trim()).filter(Boolean);
if (!RoomAccess.parse(rooms)) fail(`--rooms has an invalid entry: ${values.rooms}`);
const ttl = Number(values.ttl);
if (!Number.isInteger(ttl) || ttl <= 0) fail('--ttl must be a whole number of seconds.');

process.stdout.write(`${await mintToken(secret, { sub: values.sub, rooms, ttlSeconds: ttl })}\n`);
