// The demo page in a real browser: Debian's chromium driven by playwright-core (no browser download;
// .ci/run installs chromium with apt-get). Two browser contexts (two users, each on its own node)
// chat; one goes offline while the other sends 20; back online it shows all 20 once, in order.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, testScope, type TestNode } from './support/harness.ts';

// Page functions run in the browser; this file is type-checked without the DOM library.
declare const document: any;

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];
// Generous, bounded: the machine running this may be busy.
const WAIT = { timeout: 60_000 };
export const SCREENSHOT = join(ROOT, 'test-results', 'demo.png');

describe.skipIf(!existsSync(CHROMIUM))('the demo page in chromium', () => {
  const scope = testScope('demo');
  let n1: TestNode;
  let n2: TestNode;
  let browser: Browser;

  beforeAll(async () => {
    [n1, n2] = await Promise.all([scope.startNode({}, 'n1.db'), scope.startNode({}, 'n2.db')]);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  });
  afterAll(async () => {
    await browser?.close();
  });

  const connected = (page: Page) => page.waitForFunction(() => !document.getElementById('banner')!.classList.contains('show'), undefined, WAIT);
  const lines = (page: Page) =>
    page.$$eval('#messages li.msg', (els) => els.map((e: any) => ({ id: (e as any).dataset.id!, seq: Number((e as any).dataset.seq), body: e.querySelector('.body')!.textContent! })));
  const unread = (page: Page, room: string) => page.$eval(`#rooms li[data-room="${room}"] .unread`, (e) => Number((e as any).dataset.n));

  it('two users chat; one offline while the other sends 20: back online, all 20 once, in order, with the right unread count; typing shows', async () => {
    const ctxA = await browser.newContext({ viewport: { width: 900, height: 640 } });
    const ctxB = await browser.newContext({ viewport: { width: 900, height: 640 } });
    const a = await ctxA.newPage();
    const b = await ctxB.newPage();
    const logs: string[] = [];
    let step = 'start';
    for (const [who, p] of [['ana', a], ['bo', b]] as const) {
      p.on('console', (m) => logs.push(`${who} console: ${m.text()}`));
      p.on('pageerror', (e) => logs.push(`${who} pageerror: ${e.message}`));
    }
    try {

      // bo knows both rooms (the list is kept in localStorage) and is looking at #general
      await b.goto(`${n2.base}/demo?user=bo&room=side`);
      await connected(b);
      await b.goto(`${n2.base}/demo?user=bo&room=general`);
      await b.waitForSelector('#rooms li[data-room="side"]', WAIT);
      await connected(b);
      // ana on the other node, in #side
      await a.goto(`${n1.base}/demo?user=ana&room=side`);
      await connected(a);

      step = 'offline';
      await ctxB.setOffline(true);
      await b.waitForSelector('#banner.show', WAIT);
      for (let i = 1; i <= 20; i++) {
        await a.fill('#send-input', `hello ${i}`);
        await a.press('#send-input', 'Enter');
      }
      // all 20 stored and pushed back to ana, her optimistic lines settled
      step = 'ana sees her 20';
      await a.waitForFunction(() => document.querySelectorAll('#messages li.msg').length === 20 && !document.querySelector('#messages li.pending'), undefined, WAIT);
      const sent = await lines(a);
      expect(sent.map((l) => l.body)).toEqual(Array.from({ length: 20 }, (_, i) => `hello ${i + 1}`));

      step = 'back online';
      await ctxB.setOffline(false);
      await connected(b);
      step = 'unread 20';
      await b.waitForFunction(() => document.querySelector('#rooms li[data-room="side"] .unread')?.getAttribute('data-n') === '20', undefined, WAIT);
      expect(await unread(b, 'general')).toBe(0);
      step = 'bo opens side';
      await b.click('#rooms li[data-room="side"]');
      await b.waitForFunction(() => document.querySelectorAll('#messages li.msg').length >= 20, undefined, WAIT);
      const got = await lines(b);
      expect(got.map((l) => l.id)).toEqual(sent.map((l) => l.id)); // each once, in order (no client-side dedupe in the page)
      expect(got.map((l) => l.seq)).toEqual([...got.map((l) => l.seq)].sort((x, y) => x - y));
      expect(await unread(b, 'side')).toBe(0);

      // bo types in #side: ana sees it
      step = 'typing';
      await b.type('#send-input', 'typing something rather long...', { delay: 100 });
      await a.waitForFunction(() => document.getElementById('typing')!.textContent === 'bo is typing…', undefined, WAIT);
      await b.fill('#send-input', '');
      step = 'welcome back';
      await a.fill('#send-input', 'welcome back, bo');
      await a.press('#send-input', 'Enter');
      await b.waitForFunction(() => [...document.querySelectorAll('#messages li.msg .body')].some((e: any) => e.textContent === 'welcome back, bo'), undefined, WAIT);

      step = 'screenshot';
      await b.fill('#send-input', 'thanks, got all 20');
      await b.press('#send-input', 'Enter');
      await a.waitForFunction(() => [...document.querySelectorAll('#messages li.msg .body')].some((e: any) => e.textContent === 'thanks, got all 20'), undefined, WAIT);
      // longer than the 2 s typing throttle (client and server), so a signal goes out whatever came before
      await a.type('#send-input', 'great, and the unread count was right too', { delay: 100 });
      await b.waitForFunction(() => document.getElementById('typing')!.textContent === 'ana is typing…', undefined, WAIT);
      mkdirSync(join(ROOT, 'test-results'), { recursive: true });
      await b.screenshot({ path: SCREENSHOT });
    } catch (err) {
      // what each page looked like and said, next to the test output
      mkdirSync(join(ROOT, 'test-results'), { recursive: true });
      await a.screenshot({ path: join(ROOT, 'test-results', 'demo-failed-ana.png') }).catch(() => {});
      await b.screenshot({ path: join(ROOT, 'test-results', 'demo-failed-bo.png') }).catch(() => {});
      throw new Error(`at step "${step}": ${(err as Error).message}\n${logs.slice(-20).join('\n')}`);
    } finally {
      await ctxA.close();
      await ctxB.close();
    }
  }, 180_000);
});
