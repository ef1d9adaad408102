import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { loadConfig } from '../src/config.ts';
import { post, testScope, WsClient } from './support/harness.ts';

const scope = testScope('cors');
const APP = 'https://app.example.com';
const EVIL = 'https://evil.example.net';

/** The raw answer to an upgrade: status and body (ws's client hides the body of a refusal). */
function upgrade(url: string, origin: string | undefined): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request({
      host: u.hostname,
      port: u.port,
      path: u.pathname,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
        ...(origin ? { Origin: origin } : {}),
      },
    });
    req.once('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode!, body: '' });
    });
    req.once('response', (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

describe('CORS_ORIGINS', () => {
  it('is * or a list of exact origins; anything else stops the start naming the variable', () => {
    expect(loadConfig({}).corsOrigins).toBeUndefined();
    expect(loadConfig({ CORS_ORIGINS: '*' }).corsOrigins).toBe('*');
    expect(loadConfig({ CORS_ORIGINS: `${APP}, http://localhost:5173` }).corsOrigins).toEqual([APP, 'http://localhost:5173']);
    for (const bad of ['app.example.com', `${APP}/`, `${APP}/path`, 'ftp://x.example', '*,https://a.example', ' , ']) {
      expect(() => loadConfig({ CORS_ORIGINS: bad }), bad).toThrow(/^invalid CORS_ORIGINS: /);
    }
  });

  it('lets a page on a listed origin call the API (preflight, then the request and its errors) and gives a foreign one nothing', async () => {
    const node = await scope.startNode({ CORS_ORIGINS: `${APP},http://localhost:5173` });
    const preflight = (origin: string) =>
      fetch(`${node.base}/message`, {
        method: 'OPTIONS',
        headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type,authorization' },
      });
    const ok = await preflight(APP);
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe(APP);
    expect(ok.headers.get('access-control-allow-methods')).toContain('POST');
    expect(ok.headers.get('access-control-allow-headers')?.toLowerCase().split(',')).toEqual(expect.arrayContaining(['authorization', 'content-type']));

    const foreign = await preflight(EVIL);
    expect(foreign.headers.get('access-control-allow-origin')).toBeNull();

    const accepted = await post(node.base, { room: 'cors', sender: 'ana', body: 'hi' }, { Origin: APP });
    expect(accepted.status).toBe(202);
    expect(accepted.headers.get('access-control-allow-origin')).toBe(APP);
    expect(accepted.headers.get('vary')).toMatch(/origin/i);
    // an error answer is readable by the page too (else a browser reports a bare network error)
    const refused = await post(node.base, { room: 'cors' }, { Origin: APP });
    expect(refused.status).toBe(400);
    expect(refused.headers.get('access-control-allow-origin')).toBe(APP);
    expect(refused.headers.get('access-control-expose-headers')).toContain('Retry-After');

    const read = await fetch(`${node.base}/messages/since?after=0`, { headers: { Origin: EVIL } });
    expect(read.status).toBe(200); // the server answers; the browser withholds it from the page
    expect(read.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('refuses a WebSocket upgrade with a foreign Origin (403 JSON), not one from a listed origin or with none', async () => {
    const node = await scope.startNode({ CORS_ORIGINS: APP });
    const evil = await upgrade(node.ws, EVIL);
    expect(evil.status).toBe(403);
    expect(JSON.parse(evil.body)).toMatchObject({ error: { code: 'origin_not_allowed' } });
    expect((await upgrade(node.ws, APP)).status).toBe(101);
    expect((await upgrade(node.ws, undefined)).status).toBe(101); // native apps send no Origin

    const ws = await WsClient.connect(node.ws, { origin: APP });
    ws.send({ type: 'ping' });
    await ws.next((f) => f.type === 'pong');
    ws.ws.close();
    await expect(new Promise((res, rej) => new WebSocket(node.ws, { origin: EVIL }).once('open', res).once('error', rej))).rejects.toThrow(/403/);
  });

  it('when unset: no CORS headers, and any Origin may open a socket (the open-mode default the README warns about)', async () => {
    const node = await scope.startNode();
    const res = await fetch(`${node.base}/healthz`, { headers: { Origin: EVIL } });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect((await upgrade(node.ws, EVIL)).status).toBe(101);
  });

  it('* allows every origin over HTTP and WebSocket', async () => {
    const node = await scope.startNode({ CORS_ORIGINS: '*' });
    const res = await fetch(`${node.base}/healthz`, { headers: { Origin: EVIL } });
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect((await upgrade(node.ws, EVIL)).status).toBe(101);
  });
});
