// CORS as a real browser enforces it: Debian's chromium via playwright-core (see demo-browser.test.ts).
// Two tiny pages on two origins (127.0.0.1 on two ports; the API on a third port is cross-origin to
// both). The node allows only the first. A JSON POST /message (which needs a preflight) and a
// WebSocket work from the allowed page and are refused from the other: fetch rejects, the socket
// never opens, and nothing the foreign page sent is stored.
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testScope, type TestNode } from './support/harness.ts';

// Page functions run in the browser; this file is type-checked without the DOM library.
declare const WebSocket: any;

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];
const WAIT = { timeout: 30_000 };

/** A static page server: the page's origin is http://127.0.0.1:<port>. */
async function pageServer(): Promise<{ server: Server; origin: string }> {
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>cors</title>'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** In the page: a JSON POST /message; its status and body, or how fetch rejected. */
const postFrom = (page: Page, api: string, body: string) =>
  page.evaluate(
    async ({ api, body }) => {
      try {
        const res = await fetch(`${api}/message`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ room: 'cors-room', sender: 'web', body }) });
        return { status: res.status, json: await res.json() };
      } catch (err) {
        return { rejected: String(err) };
      }
    },
    { api, body },
  );

/** In the page: open a WebSocket and subscribe; the first frame, or 'refused' if it never opened. */
const socketFrom = (page: Page, ws: string) =>
  page.evaluate(
    (url) =>
      new Promise<string>((resolve) => {
        const socket = new WebSocket(url);
        const timer = setTimeout(() => resolve('timeout'), 20_000);
        const done = (v: string) => {
          clearTimeout(timer);
          socket.close();
          resolve(v);
        };
        socket.onopen = () => socket.send(JSON.stringify({ type: 'subscribe', room: 'cors-room' }));
        socket.onmessage = (e: { data: string }) => done(JSON.parse(e.data).type);
        socket.onerror = () => done('refused');
        socket.onclose = () => done('refused');
      }),
    ws,
  );

describe.skipIf(!existsSync(CHROMIUM))('CORS in chromium', () => {
  const scope = testScope('cors-browser');
  let node: TestNode;
  let browser: Browser;
  let allowed: Awaited<ReturnType<typeof pageServer>>;
  let foreign: Awaited<ReturnType<typeof pageServer>>;
  let allowedPage: Page;
  let foreignPage: Page;

  beforeAll(async () => {
    [allowed, foreign] = await Promise.all([pageServer(), pageServer()]);
    node = await scope.startNode({ CORS_ORIGINS: allowed.origin });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
    allowedPage = await (await browser.newContext()).newPage();
    foreignPage = await (await browser.newContext()).newPage();
    await allowedPage.goto(allowed.origin, WAIT);
    await foreignPage.goto(foreign.origin, WAIT);
  });
  afterAll(async () => {
    await browser?.close();
    for (const s of [allowed, foreign]) s?.server.close();
  });

  it('a page from an allowed origin posts (after a preflight); a foreign one is refused and stores nothing', async () => {
    const refused = await postFrom(foreignPage, node.base, 'from-foreign');
    expect(refused).toEqual({ rejected: expect.stringMatching(/Failed to fetch/) });

    const ok = await postFrom(allowedPage, node.base, 'from-allowed');
    expect(ok).toMatchObject({ status: 202, json: { room: 'cors-room', sender: 'web', status: 'accepted' } });

    // The allowed one is stored; the foreign one never reached the server (the preflight failed).
    await expect
      .poll(async () => ((await (await fetch(`${node.base}/messages/since?after=0&room=cors-room`)).json()) as { messages: { body: string }[] }).messages.map((m) => m.body), WAIT)
      .toEqual(['from-allowed']);
  });

  it('a WebSocket from the allowed origin opens and subscribes; from a foreign origin it never opens', async () => {
    expect(await socketFrom(foreignPage, node.ws)).toBe('refused');
    expect(await socketFrom(allowedPage, node.ws)).toBe('subscribed');
  });
});
