/**
 * Child process: HTTP POST load on /message over keep-alive connections.
 * - closed loop: `concurrency` requests always in flight for `seconds` (the rate it reaches is
 *   the highest the server sustains at that window);
 * - open loop: a fixed `rate`, whatever the answers do (latency phase).
 * Every body carries its send time. Reports status counts and the ids the server accepted, by room.
 */
import http from 'node:http';
import { nowMs, sleep } from './clock.ts';
import { serve } from './ipc.ts';
import { bodyText, roomName, senderName } from './records.ts';
import { distribution, type Distribution } from './stats.ts';

export interface LoadArgs {
  /** e.g. http://127.0.0.1:3000 */
  base: string;
  mode: 'closed' | 'open';
  seconds: number;
  /** closed loop: requests in flight; open loop: the most in flight before sends are skipped */
  concurrency: number;
  /** open loop only: messages per second */
  rate?: number;
  rooms: number;
  /** rooms used are roomName(roomOffset + k % rooms) */
  roomOffset?: number;
  /** when given, rooms are `${roomPrefix}${k % rooms}` instead (e.g. rooms nobody subscribes to) */
  roomPrefix?: string;
  bodyBytes: number;
  /** hard cap on requests, whatever the time */
  maxRequests: number;
  /** collect accepted ids by room (for the exactly-once check) */
  collectIds: boolean;
}

export interface LoadResult {
  sent: number;
  statuses: Record<string, number>;
  accepted: number;
  /** open loop: sends skipped because `concurrency` were already in flight */
  skipped: number;
  errors: number;
  errorSample?: string;
  startAt: number;
  endAt: number;
  /** first send to last answer */
  durationMs: number;
  acceptedPerSec: number;
  /** time to the 202 (or other answer), ms */
  answerMs: Distribution;
  acceptedByRoom?: Record<string, string[]>;
}

const REQUEST_TIMEOUT_MS = 10_000;

async function run(a: LoadArgs): Promise<LoadResult> {
  const url = new URL(a.base);
  const agent = new http.Agent({ keepAlive: true, maxSockets: a.concurrency, maxFreeSockets: a.concurrency });
  const statuses: Record<string, number> = {};
  const acceptedByRoom: Record<string, string[]> = {};
  const answerMs: number[] = [];
  let sent = 0;
  let accepted = 0;
  let errors = 0;
  let errorSample: string | undefined;
  let skipped = 0;
  let inFlight = 0;
  const roomOffset = a.roomOffset ?? 0;

  const postOne = (k: number): Promise<void> => {
    const room = a.roomPrefix !== undefined ? `${a.roomPrefix}${k % a.rooms}` : roomName(roomOffset + (k % a.rooms));
    const t = nowMs();
    const payload = Buffer.from(JSON.stringify({ room, sender: senderName(k), body: bodyText(t, a.bodyBytes) }));
    sent++;
    inFlight++;
    return new Promise<void>((resolve) => {
      const done = (status: string, text?: string) => {
        inFlight--;
        statuses[status] = (statuses[status] ?? 0) + 1;
        answerMs.push(nowMs() - t);
        if (status === '202') {
          accepted++;
          if (a.collectIds && text) {
            try {
              const id = (JSON.parse(text) as { id: string }).id;
              (acceptedByRoom[room] ??= []).push(id);
            } catch {
              errorSample ??= `unparsable 202 body: ${text.slice(0, 200)}`;
            }
          }
        } else if (status === 'error' || errorSample === undefined) {
          errorSample ??= `${status}: ${(text ?? '').slice(0, 300)}`;
        }
        resolve();
      };
      const req = http.request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          path: '/message',
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': payload.length },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => done(String(res.statusCode), Buffer.concat(chunks).toString()));
          res.on('error', (err) => {
            errors++;
            done('error', err.message);
          });
        },
      );
      req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error('request timed out')));
      req.on('error', (err) => {
        errors++;
        done('error', err.message);
      });
      req.end(payload);
    });
  };

  const startAt = nowMs();
  const deadline = startAt + a.seconds * 1000;
  if (a.mode === 'closed') {
    let issued = 0;
    const worker = async () => {
      while (nowMs() < deadline && issued < a.maxRequests) await postOne(issued++);
    };
    await Promise.all(Array.from({ length: a.concurrency }, worker));
  } else {
    const rate = a.rate ?? 1000;
    const inFlightDone: Promise<void>[] = [];
    let issued = 0;
    while (nowMs() < deadline && issued < a.maxRequests) {
      const due = Math.min(a.maxRequests, Math.floor(((nowMs() - startAt) * rate) / 1000));
      while (issued < due) {
        if (inFlight >= a.concurrency) {
          skipped += due - issued;
          issued = due;
          break;
        }
        inFlightDone.push(postOne(issued++));
      }
      await sleep(1);
    }
    // Every request has its own timeout, so this ends.
    await Promise.all(inFlightDone);
  }
  const endAt = nowMs();
  agent.destroy();
  const durationMs = endAt - startAt;
  return {
    sent,
    statuses,
    accepted,
    skipped,
    errors,
    errorSample,
    startAt,
    endAt,
    durationMs: Math.round(durationMs),
    acceptedPerSec: Math.round((accepted / durationMs) * 1000),
    answerMs: distribution(answerMs),
    acceptedByRoom: a.collectIds ? acceptedByRoom : undefined,
  };
}

serve({ run });
