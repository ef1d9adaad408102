/**
 * Child process: the HTTP ceiling. A bare Hono POST /message on @hono/node-server that parses the
 * JSON body and answers 202 with the same shape as the real server, without validation or broker.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { createAdaptorServer } from '@hono/node-server';
import { Hono } from 'hono';
import { listenOnLoopback, serve } from './ipc.ts';

const app = new Hono();
app.post('/message', async (c) => {
  const b = (await c.req.json()) as { id?: string; room: string; sender: string };
  return c.json({ id: b.id ?? randomUUID(), room: b.room, sender: b.sender, createdAt: new Date().toISOString(), status: 'accepted' }, 202);
});
const server = createAdaptorServer({ fetch: app.fetch }) as Server;

serve({ listen: () => listenOnLoopback(server) });
