import { describe, expect, it } from 'vitest';
import { post, testScope, WsClient } from './support/harness.ts';

const scope = testScope('metrics');

/** One sample's value from the text exposition (labels exactly as written, in prom-client's order). */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('GET /metrics', () => {
  it('exposes process defaults and the chat figures, which move with posts, subscribes and deliveries', async () => {
    const node = await scope.startNode();
    const scrape = async () => {
      const res = await fetch(`${node.base}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      return res.text();
    };
    const before = await scrape();
    expect(sample(before, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(sample(before, 'chat_broker_connected')).toBe(1);
    expect(sample(before, 'chat_sockets_open')).toBe(0);
    for (const name of ['chat_commit_duration_seconds', 'chat_publish_confirm_duration_seconds', 'chat_delivery_delay_seconds']) expect(before).toContain(`# TYPE ${name} histogram`);
    // no per-user or per-room labels anywhere
    expect(before).not.toMatch(/\{[^}]*(room|user|sender)=/);

    const ws = await WsClient.connect(node.ws);
    ws.send({ type: 'subscribe', room: 'm1' });
    await ws.next((f) => f.type === 'subscribed');
    const postedFrom = Date.now();
    for (let i = 0; i < 3; i++) expect((await post(node.base, { room: 'm1', sender: 'ana', body: `hello ${i}` })).status).toBe(202);
    expect((await post(node.base, { room: 'm1', sender: 'ana' })).status).toBe(400);
    await ws.until(() => ws.messages('m1').length >= 3 || undefined);
    const late = await WsClient.connect(node.ws);
    late.send({ type: 'subscribe', room: 'm1', after: 0 });
    await late.until(() => late.messages('m1').length >= 3 || undefined);
    const recent = await WsClient.connect(node.ws);
    recent.send({ type: 'subscribe', room: 'm1', last: 2 });
    await recent.until(() => recent.messages('m1').length >= 2 || undefined);
    expect((await fetch(`${node.base}/messages/since?since=0&room=m1`)).status).toBe(200);

    const after = await scrape();
    expect(sample(after, 'chat_posts_accepted_total')).toBe(3);
    expect(sample(after, 'chat_posts_refused_total', 'code="validation_failed"')).toBe(1);
    expect(sample(after, 'chat_sockets_open')).toBe(3);
    expect(sample(after, 'chat_subscriptions_open')).toBe(3);
    expect(sample(after, 'chat_rooms_with_subscribers')).toBe(1);
    expect(sample(after, 'chat_records_stored_total')).toBeGreaterThanOrEqual(3);
    expect(sample(after, 'chat_messages_delivered_total', 'path="live"')).toBe(3);
    expect(sample(after, 'chat_messages_delivered_total', 'path="replay"')).toBe(3 + 2);
    expect(sample(after, 'chat_delivered_bytes_total', 'path="live"')).toBeGreaterThan(3 * 100);
    expect(sample(after, 'chat_catchup_requests_total', 'kind="ws_live"')).toBe(1);
    expect(sample(after, 'chat_catchup_requests_total', 'kind="ws_after"')).toBe(1);
    expect(sample(after, 'chat_catchup_requests_total', 'kind="ws_last"')).toBe(1);
    expect(sample(after, 'chat_catchup_requests_total', 'kind="http_since"')).toBe(1);
    expect(sample(after, 'chat_publish_confirm_duration_seconds_count')).toBe(3);
    expect(sample(after, 'chat_commit_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    // each stored message once, when the node pushed it (replays are not deliveries from the log)
    expect(sample(after, 'chat_delivery_delay_seconds_count')).toBe(3);
    expect(sample(after, 'chat_delivery_delay_seconds_bucket', 'le="+Inf"')).toBe(3);
    // each delay is from the message's createdAt, so none can exceed the time since the first post
    const delays = sample(after, 'chat_delivery_delay_seconds_sum');
    expect(delays).toBeGreaterThanOrEqual(0);
    expect(delays).toBeLessThanOrEqual((3 * (Date.now() - postedFrom + 1)) / 1000);
    expect(sample(after, 'chat_http_requests_total', 'method="POST",route="/message",status="202"')).toBe(3);
    expect(sample(after, 'chat_replica_lag_records')).toBe(0);

    ws.ws.close(1000);
    await ws.closed;
    await expect.poll(async () => sample(await scrape(), 'chat_socket_closes_total', 'code="1000"')).toBe(1);
    late.ws.close();
    recent.ws.close();
  });

  it('requires the bearer token when METRICS_TOKEN is set', async () => {
    const node = await scope.startNode({ METRICS_TOKEN: 'scrape-me-please-0123' });
    const anonymous = await fetch(`${node.base}/metrics`);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ error: { code: 'unauthorized' } });
    expect((await fetch(`${node.base}/metrics`, { headers: { Authorization: 'Bearer wrong' } })).status).toBe(401);
    const ok = await fetch(`${node.base}/metrics`, { headers: { Authorization: 'Bearer scrape-me-please-0123' } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('chat_sockets_open');
  });
});
