// The demo chat page, built on the SDK and nothing else (bundled for the browser by esbuild when
// the server first serves /demo/app.js). Plain DOM on purpose: it is an example to read.
import { ChatClient, type Room, type WireMessage } from '../client/index.ts';

type Doc = {
  getElementById(id: string): any;
  createElement(tag: string): any;
  body: { dataset: Record<string, string> };
  title: string;
};
declare const document: Doc;
declare const location: { origin: string; search: string; pathname: string };
declare const history: { replaceState(s: unknown, t: string, url: string): void };
declare const localStorage: { getItem(k: string): string | null; setItem(k: string, v: string): void };

const $ = (id: string) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const tokenMode = document.body.dataset.auth === 'token';
const TYPING_SHOWN_MS = 3000;

interface RoomView {
  room: Room;
  messages: WireMessage[];
  ids: Set<string>;
  unread: number;
  lastRead: number;
  hasOlder: boolean;
  loadingOlder: boolean;
  li: any;
}

let chat: ChatClient;
let me = '';
let active = '';
const views = new Map<string, RoomView>();
/** Sends in flight, by key: their optimistic line and, once accepted, the id. */
const pending = new Map<string, { el: any; id?: string }>();
let typingTimer: ReturnType<typeof setTimeout> | undefined;

function login(): void {
  const form = $('login');
  const input = $('login-input');
  $('login-label').textContent = tokenMode ? 'This server needs a token (npm run token -- --sub you --rooms "*")' : 'Your name';
  const given = tokenMode ? sessionStorage().getItem('demo-token') : params.get('user');
  if (given) return start(given);
  form.style.display = 'block';
  form.onsubmit = (e: Event) => {
    e.preventDefault();
    const v = String(input.value).trim();
    if (!v) return;
    if (tokenMode) sessionStorage().setItem('demo-token', v);
    else params.set('user', v);
    history.replaceState(null, '', `${location.pathname}?${params}`);
    start(v);
  };
}

function sessionStorage(): { getItem(k: string): string | null; setItem(k: string, v: string): void } {
  return (globalThis as any).sessionStorage;
}

function start(userOrToken: string): void {
  $('login').style.display = 'none';
  $('app').classList.add('show');
  if (tokenMode) {
    me = subOf(userOrToken);
    chat = new ChatClient({ url: location.origin, getToken: () => sessionStorage().getItem('demo-token') ?? '', storage: localStorage, storagePrefix: `demo|${me}` });
  } else {
    me = userOrToken;
    chat = new ChatClient({ url: location.origin, user: me, storage: localStorage });
  }
  $('me').textContent = me;
  chat.on('state', (s) => {
    const banner = $('banner');
    banner.className = s.state === 'connected' ? '' : s.state === 'connecting' ? 'show connecting' : 'show';
    banner.textContent =
      s.state === 'connecting' ? 'Connecting…' : s.state === 'disconnected' ? `Offline (${s.reason})${s.retryInMs !== undefined ? `: retrying in ${Math.ceil(s.retryInMs / 1000)} s` : ''}` : '';
  });
  const rooms = new Set<string>(JSON.parse(localStorage.getItem(`demo-rooms|${me}`) ?? '[]') as string[]);
  const wanted = params.get('room');
  if (wanted) rooms.add(wanted);
  if (rooms.size === 0) rooms.add('general');
  for (const r of rooms) openRoom(r);
  select(wanted ?? [...rooms][0]!);
  // The server's view of the conversation list (rooms this user is in, unread counts), where it has one.
  chat
    .conversations()
    .then((page) => {
      for (const s of page.rooms) {
        const v = openRoom(s.room);
        if (s.room !== active && s.lastRead >= v.lastRead) {
          v.lastRead = s.lastRead;
          v.unread = s.unread;
          paintUnread(v);
        }
      }
    })
    .catch(() => {});
  $('join').onsubmit = (e: Event) => {
    e.preventDefault();
    const name = String($('join-input').value).trim();
    if (!name) return;
    $('join-input').value = '';
    openRoom(name);
    select(name);
  };
  $('send').onsubmit = (e: Event) => {
    e.preventDefault();
    const input = $('send-input');
    const body = String(input.value);
    if (!body.trim()) return;
    input.value = '';
    void views.get(active)?.room.send(body).catch(() => {});
  };
  $('send-input').oninput = () => views.get(active)?.room.typing();
  $('messages').onscroll = () => {
    if ($('messages').scrollTop < 40) void loadOlder(views.get(active));
  };
}

function subOf(token: string): string {
  try {
    return String(JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))).sub);
  } catch {
    return '?';
  }
}

function saveRooms(): void {
  localStorage.setItem(`demo-rooms|${me}`, JSON.stringify([...views.keys()]));
}

function openRoom(name: string): RoomView {
  const existing = views.get(name);
  if (existing) return existing;
  const room = chat.room(name, { last: 30 });
  const li = document.createElement('li');
  li.dataset.room = name;
  li.innerHTML = '<span class="name"></span><span class="unread" data-n="0"></span>';
  li.querySelector('.name').textContent = name;
  li.onclick = () => select(name);
  $('rooms').appendChild(li);
  const stored = JSON.parse(localStorage.getItem(`demo-read|${me}|${name}`) ?? '{"lastRead":0,"unread":0}') as { lastRead: number; unread: number };
  const v: RoomView = { room, messages: [], ids: new Set(), unread: stored.unread, lastRead: stored.lastRead, hasOlder: true, loadingOlder: false, li };
  views.set(name, v);
  paintUnread(v);
  saveRooms();
  room.on('message', (m) => onMessage(v, m));
  room.on('reset', () => {
    v.messages = [];
    v.ids.clear();
    v.lastRead = 0;
    v.unread = 0;
    v.hasOlder = true;
    paintUnread(v);
    if (active === name) render();
  });
  room.on('read', (e) => {
    if (e.seq > v.lastRead) {
      v.lastRead = e.seq;
      v.unread = v.messages.filter((m) => m.seq > e.seq && m.sender !== me).length;
      paintUnread(v);
    }
  });
  room.on('pending', (p) => {
    if (active !== name) return;
    const el = line({ sender: me, body: p.body }, 'pending');
    el.dataset.key = p.key;
    el.querySelector('.state').textContent = 'sending…';
    $('messages').appendChild(el);
    pending.set(p.key, { el });
    scrollDown();
  });
  room.on('accepted', (a) => {
    const p = pending.get(a.key ?? '');
    if (!p) return;
    p.id = a.id;
    if (v.ids.has(a.id)) return settle(a.key!);
    p.el.querySelector('.state').textContent = '✓ accepted';
  });
  room.on('failed', (f) => {
    const p = pending.get(f.key);
    if (p) p.el.querySelector('.state').textContent = `not sent: ${f.error.message}`;
  });
  room.on('typing', (e) => {
    if (active !== name || e.user === me) return;
    $('typing').textContent = `${e.user} is typing…`;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => ($('typing').textContent = ''), TYPING_SHOWN_MS);
  });
  room.on('presence', () => active === name && paintPresence(v));
  return v;
}

function onMessage(v: RoomView, m: WireMessage): void {
  // a scrollback page fetched before the subscription's replay arrived may hold it already
  if (v.ids.has(m.id)) return;
  v.messages.push(m);
  v.ids.add(m.id);
  if (v.room.name === active) {
    // its optimistic line, if this tab sent it, gives way to the stored message
    for (const [key, p] of pending) if (key === m.key || p.id === m.id) settle(key);
    $('messages').appendChild(messageLine(m));
    scrollDown();
    markRead(v, m.seq);
  } else if (m.sender !== me && m.seq > v.lastRead) {
    v.unread++;
    paintUnread(v);
  }
}

function settle(key: string): void {
  pending.get(key)?.el.remove();
  pending.delete(key);
}

function markRead(v: RoomView, seq: number): void {
  if (seq <= v.lastRead) return;
  v.lastRead = seq;
  v.unread = 0;
  v.room.markRead(seq);
  paintUnread(v);
}

function paintUnread(v: RoomView): void {
  const badge = v.li.querySelector('.unread');
  badge.dataset.n = String(v.unread);
  badge.textContent = v.unread ? String(v.unread) : '';
  localStorage.setItem(`demo-read|${me}|${v.room.name}`, JSON.stringify({ lastRead: v.lastRead, unread: v.unread }));
}

function paintPresence(v: RoomView): void {
  const users = v.room.presence;
  $('presence').textContent = users.length ? `online: ${users.join(', ')}` : '';
}

function select(name: string): void {
  active = name;
  for (const li of $('rooms').children) li.classList.toggle('active', li.dataset.room === name);
  $('title').textContent = `# ${name}`;
  $('typing').textContent = '';
  params.set('room', name);
  history.replaceState(null, '', `${location.pathname}?${params}`);
  const v = views.get(name)!;
  render();
  paintPresence(v);
  const newest = v.messages[v.messages.length - 1];
  if (newest) markRead(v, newest.seq);
  if (v.messages.length < 20) void loadOlder(v);
}

function render(): void {
  const ul = $('messages');
  ul.textContent = '';
  pending.clear();
  for (const m of views.get(active)?.messages ?? []) ul.appendChild(messageLine(m));
  scrollDown();
}

/** Scrollback: the page before the oldest message shown, prepended without moving the view. */
async function loadOlder(v: RoomView | undefined): Promise<void> {
  if (!v || !v.hasOlder || v.loadingOlder) return;
  v.loadingOlder = true;
  try {
    const oldest = v.messages[0]?.seq;
    const page = await v.room.history({ before: oldest, limit: 30 });
    // only what is older than the oldest shown NOW: the replay or live messages may have arrived meanwhile
    const shownOldest = v.messages[0]?.seq;
    const older = page.messages.filter((m) => (shownOldest === undefined || m.seq < shownOldest) && (oldest === undefined || m.seq < oldest) && !v.ids.has(m.id));
    v.hasOlder = shownOldest !== oldest || (page.hasMore && older.length > 0); // the view moved meanwhile: ask again from its new oldest
    if (older.length === 0) return;
    v.messages = [...older, ...v.messages];
    for (const m of older) v.ids.add(m.id);
    if (v.room.name !== active) return;
    const ul = $('messages');
    const before = ul.scrollHeight;
    const first = ul.firstChild;
    for (const m of older) ul.insertBefore(messageLine(m), first);
    ul.scrollTop += ul.scrollHeight - before;
    const newest = v.messages[v.messages.length - 1];
    if (newest) markRead(v, newest.seq);
  } catch {
    v.hasOlder = false; // a server without scrollback
  } finally {
    v.loadingOlder = false;
  }
}

function messageLine(m: WireMessage): any {
  const el = line(m, m.sender === me ? 'mine' : '');
  el.classList.add('msg');
  el.dataset.id = m.id;
  el.dataset.seq = String(m.seq);
  el.title = `seq ${m.seq} · ${m.createdAt}`;
  return el;
}

function line(m: { sender: string; body: string }, cls: string): any {
  const el = document.createElement('li');
  if (cls) el.className = cls;
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = m.sender;
  const body = document.createElement('span');
  body.className = 'body';
  body.textContent = m.body;
  const state = document.createElement('span');
  state.className = 'state';
  el.append(who, body, state);
  return el;
}

function scrollDown(): void {
  const ul = $('messages');
  ul.scrollTop = ul.scrollHeight;
}

login();
