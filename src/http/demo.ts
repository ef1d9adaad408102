import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Hono } from 'hono';

const DEMO_DIR = fileURLToPath(new URL('../demo/', import.meta.url));

/**
 * GET /demo: the demo chat page, and GET /demo/app.js: its script (src/demo/app.ts with the SDK),
 * bundled by esbuild on the first request and kept in memory, so `npm start` needs no build step.
 */
export function demoRoutes(opts: { tokenMode: boolean }): Hono {
  const app = new Hono();
  const page = readFileSync(`${DEMO_DIR}page.html`, 'utf8').replace('__AUTH__', opts.tokenMode ? 'token' : 'open');
  let bundle: Promise<string> | undefined;
  const build = async () => {
    const esbuild = await import('esbuild');
    const out = await esbuild.build({
      entryPoints: [`${DEMO_DIR}app.ts`],
      bundle: true,
      format: 'esm',
      target: 'es2020',
      minify: true,
      write: false,
      logLevel: 'silent',
    });
    return out.outputFiles[0]!.text;
  };
  app.get('/demo', (c) => c.html(page));
  app.get('/demo/app.js', async (c) => {
    bundle ??= build().catch((err) => {
      bundle = undefined; // try again on the next request
      throw err;
    });
    const js = await bundle;
    return c.body(js, 200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache' });
  });
  return app;
}
