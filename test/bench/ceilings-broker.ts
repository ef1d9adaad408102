import type { AsyncMessage, Connection } from 'rabbitmq-client';
import { encodeRecord } from '../../src/domain/records.ts';
import { nowMs } from './clock.ts';
import type { BenchOptions } from './options.ts';
import { say } from './progress.ts';
import { connectRabbit, declareStream } from './rabbit.ts';
import { logRecord, roomName } from './records.ts';
import type { Scope } from './scope.ts';
import { perSecond } from './stats.ts';

/** The server's default CONSUMER_PREFETCH (src/config.ts). */
export const SERVER_PREFETCH = 2000;

export interface PublishResult {
  published: number;
  ms: number;
  perSec: number | null;
}

/**
 * Publishes records to a stream exactly as the server's publisher does (confirm, durable,
 * mandatory, a message id) with `concurrency` sends in flight, until `count` or `seconds` is reached.
 */
export async function publishWindow(
  conn: Connection,
  stream: string,
  o: { concurrency: number; count: number; seconds: number; record: (i: number) => Buffer; signal?: AbortSignal },
): Promise<PublishResult> {
  const pub = conn.createPublisher({ confirm: true, maxAttempts: 1 });
  let issued = 0;
  let published = 0;
  let returned = 0;
  pub.on('basic.return', () => returned++);
  const t0 = nowMs();
  const deadline = t0 + o.seconds * 1000;
  try {
    const worker = async () => {
      while (issued < o.count && nowMs() < deadline && !o.signal?.aborted) {
        const i = issued++;
        await pub.send({ routingKey: stream, durable: true, mandatory: true, messageId: `b${i}` }, o.record(i));
        published++;
      }
    };
    await Promise.all(Array.from({ length: o.concurrency }, worker));
  } finally {
    await pub.close().catch(() => {});
  }
  if (returned > 0) throw new Error(`${returned} publishes were returned: does stream ${stream} exist?`);
  const ms = nowMs() - t0;
  return { published, ms: Math.round(ms), perSec: perSecond(published, ms) };
}

/**
 * Reads a stream from its first record the way the server's consumer does (manual acks, the same
 * prefetch, one multiple-ack per batch of deliveries that arrived together) without storing
 * anything, until `count` records arrived.
 */
export async function consumeAll(
  conn: Connection,
  stream: string,
  o: { count: number; prefetch: number; timeoutMs: number },
): Promise<{ consumed: number; ms: number; perSec: number | null }> {
  const ch = await conn.acquire();
  try {
    await ch.basicQos({ prefetchCount: o.prefetch });
    let consumed = 0;
    let lastOffset = -1;
    let buffer: AsyncMessage[] = [];
    let scheduled = false;
    const t0 = nowMs();
    let lastAt = t0;
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const flush = () => {
      scheduled = false;
      if (buffer.length === 0) return;
      const batch = buffer;
      buffer = [];
      for (const m of batch) lastOffset = Number(m.headers?.['x-stream-offset']);
      consumed += batch.length;
      lastAt = nowMs();
      ch.basicAck({ deliveryTag: batch[batch.length - 1]!.deliveryTag, multiple: true });
      if (consumed >= o.count) done();
    };
    await ch.basicConsume({ queue: stream, noAck: false, arguments: { 'x-stream-offset': 'first' } }, (msg) => {
      buffer.push(msg);
      if (buffer.length >= o.prefetch) flush();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, o.timeoutMs)));
    await Promise.race([finished, timedOut]);
    clearTimeout(timer);
    if (consumed < o.count) throw new Error(`consumed ${consumed} of ${o.count} in ${o.timeoutMs} ms (last offset ${lastOffset})`);
    const ms = lastAt - t0;
    return { consumed, ms: Math.round(ms), perSec: perSecond(consumed, ms) };
  } finally {
    await ch.close().catch(() => {});
  }
}

export interface BrokerCeilings {
  stream: string;
  concurrency: number;
  prefetch: number;
  recordBytes: number;
  publish: PublishResult;
  consume: { consumed: number; ms: number; perSec: number | null };
}

/** (a) The broker alone: publish-with-confirm rate, then the rate a bare stream consumer reads it back. */
export async function runBrokerCeilings(scope: Scope, opts: BenchOptions, stream: string): Promise<BrokerCeilings> {
  const conn = await connectRabbit(opts.rabbitmqUrl, 'bench ceiling');
  scope.defer(() => conn.close());
  await declareStream(conn, stream);
  const record = (i: number) => encodeRecord(logRecord(roomName(i % opts.rooms), i, opts.bodyBytes));
  say(`broker: publishing with confirms, ${opts.concurrency} in flight, for ${opts.seconds} s`);
  const publish = await publishWindow(conn, stream, {
    concurrency: opts.concurrency,
    count: opts.seconds * 1_000_000,
    seconds: opts.seconds,
    record,
    signal: scope.signal,
  });
  say(`broker: published ${publish.published} (${publish.perSec}/s); consuming them back with prefetch ${SERVER_PREFETCH}`);
  const consume = await consumeAll(conn, stream, { count: publish.published, prefetch: SERVER_PREFETCH, timeoutMs: 120_000 });
  say(`broker: consumed ${consume.consumed} (${consume.perSec}/s)`);
  return { stream, concurrency: opts.concurrency, prefetch: SERVER_PREFETCH, recordBytes: record(0).length, publish, consume };
}
