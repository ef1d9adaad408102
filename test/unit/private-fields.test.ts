import { Socket } from 'node:net';
import { Connection } from 'rabbitmq-client';
import { describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { openDb } from '../../src/store/db.ts';
import { MessageStore } from '../../src/store/messages.ts';

/**
 * We reach into three libraries' private fields, each for a measured reason. An upgrade that
 * renames one would not fail anything else: batching would just silently stop. These tests fail
 * instead. (Where each is used: src/hub/socket.ts cork/uncork, src/broker/connection.ts
 * corkForThisTurn, src/store/messages.ts statements().)
 */
describe('private fields we depend on still exist', () => {
  it("ws: a WebSocket's `_socket` is its net.Socket (socket.ts corks a batch's frames into one write)", async () => {
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((resolve) => server.once('listening', resolve));
    const accepted = new Promise<WebSocket>((resolve) => server.once('connection', resolve));
    const client = new WebSocket(`ws://127.0.0.1:${(server.address() as { port: number }).port}`);
    await new Promise((resolve) => client.once('open', resolve));
    const serverSide = await accepted;
    const socket = (serverSide as unknown as { _socket?: unknown })._socket;
    expect(socket).toBeInstanceOf(Socket);
    expect(typeof (socket as Socket).cork).toBe('function');
    client.terminate();
    await new Promise((resolve) => server.close(resolve));
  });

  it("rabbitmq-client: a Connection's `_socket` is its net.Socket (connection.ts corks a turn's publishes)", async () => {
    // An unreachable port: the socket exists from the constructor on; no broker needed.
    const conn = new Connection({ url: 'amqp://guest:guest@127.0.0.1:1', retryLow: 1000, retryHigh: 1000 });
    conn.on('error', () => {});
    try {
      expect((conn as unknown as { _socket?: unknown })._socket).toBeInstanceOf(Socket);
    } finally {
      await conn.close();
    }
  });

  it("drizzle: a prepared query's `stmt.source` is its SQL (store.statements(), for the query-plan checks)", () => {
    const store = new MessageStore(openDb(':memory:'), 's');
    const statements = store.statements();
    expect(Object.keys(statements).length).toBeGreaterThan(5);
    for (const [name, sql] of Object.entries(statements)) expect(sql, name).toMatch(/^\s*(select|insert|update|delete)\b/i);
  });
});
