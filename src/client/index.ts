/**
 * chat-catchup/client: the client SDK for browsers, React Native and Node.
 *
 *   const chat = new ChatClient({ url: 'https://chat.example.com', user: 'ana', storage: localStorage });
 *   const room = chat.room('general', { last: 50 });
 *   room.on('message', (m) => render(m));
 *   await room.send('hi');
 */
export { ChatClient, type ChatClientOptions, type ChatClientEvents, type ConnectionState } from './client.ts';
export { Room, type RoomOptions, type RoomEvents, type PendingMessage } from './room.ts';
export { ChatError } from './errors.ts';
export { memoryStorage, type CursorStorage, type Cursor } from './storage.ts';
export { newKey } from './key.ts';
export type { WebSocketLike, WebSocketConstructor, FetchLike, FetchResponseLike } from './transport.ts';
export type { WireMessage, Accepted, BeforePage, RoomsPage, RoomSummary, ServerFrame, ClientFrame } from '../protocol.ts';
export { CLOSE } from '../protocol.ts';
