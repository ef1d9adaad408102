/**
 * Child process: many WebSocket clients speaking the chat protocol (subscribe -> subscribed ->
 * message frames). Used against the real server and the bare ws server. Per socket it records
 * the ids it received (when asked to), checks that seq only goes up, and measures send -> receive
 * latency from the time in each body.
 */
import WebSocket from 'ws';
import { nowMs, sleep } from './clock.ts';
import { serve } from './ipc.ts';
import { openMany } from './open-many.ts';
import { roomName, sentAtOf } from './records.ts';

export interface OpenArgs {
  url: string;
  /** sockets to open in this process */
  count: number;
  /** global index of the first one: socket i subscribes to roomName(i % rooms) */
  firstIndex: number;
  rooms: number;
  /** record per socket the ids received */
  track: boolean;
  /** connection attempts in flight at once */
  connectConcurrency?: number;
  timeoutMs?: number;
}

export interface OpenResult {
  subscribed: number;
  failed: number;
  failureSample?: string;
  ms: number;
  /** subscribers per room (for the expected frame count) */
  perRoom: Record<string, number>;
}

export interface ClientStats {
  sockets: number;
  open: number;
  frames: number;
  firstAt: number;
  lastAt: number;
  /** frames whose seq was not above the previous one on that socket */
  outOfOrder: number;
  errorFrames: number;
  errorSample?: string;
  /** close codes of sockets that closed without being asked to */
  unexpectedCloses: Record<string, number>;
}

export interface VerifyResult {
  /** accepted messages of a socket's room that it never received */
  lost: number;
  /** receptions beyond the first of one id on one socket */
  duplicates: number;
  /** ids received that were never accepted (e.g. a publish that timed out but went through) */
  unexpected: number;
  expected: number;
  lostSample?: string;
}

interface Client {
  ws: WebSocket;
  room: string;
  lastSeq: number;
  ids: Map<string, number> | undefined;
  closing: boolean;
}

const clients: Client[] = [];
let track = false;
let measureLatency = true;
let frames = 0;
let firstAt = 0;
let lastAt = 0;
let outOfOrder = 0;
let errorFrames = 0;
let errorSample: string | undefined;
const unexpectedCloses: Record<string, number> = {};
let latencies = new Float64Array(1 << 16);
/** The send time of each latency (same index): the latency phase reports it second by second. */
let sentTimes = new Float64Array(1 << 16);
let latencyCount = 0;
const MAX_LATENCIES = 20_000_000;

function recordLatency(ms: number, sent: number): void {
  if (latencyCount === latencies.length) {
    if (latencies.length >= MAX_LATENCIES) return;
    const grow = (a: Float64Array) => {
      const bigger = new Float64Array(a.length * 2);
      bigger.set(a);
      return bigger;
    };
    latencies = grow(latencies);
    sentTimes = grow(sentTimes);
  }
  sentTimes[latencyCount] = sent;
  latencies[latencyCount++] = ms;
}

type Frame = { type?: string; id?: string; seq?: number; body?: string; head?: number; code?: string; message?: string };

const MESSAGE_PREFIX = '{"type":"message",';

/**
 * One WebSocket message: one frame, or with `?batch=1` several, one per line. Message frames are
 * counted without JSON.parse (the load is meant to cost less than the server): the id, seq and
 * body's send time are cut out of the text, whose shape the server fixes (src/hub/hub.ts).
 */
function onFrame(c: Client, data: WebSocket.RawData, onSubscribed?: () => void): void {
  const at = nowMs();
  const text = data.toString();
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    const line = nl < 0 ? (start === 0 ? text : text.slice(start)) : text.slice(start, nl);
    if (line.startsWith(MESSAGE_PREFIX)) onMessage(c, line, at);
    else onOther(c, line, onSubscribed);
    if (nl < 0) return;
    start = nl + 1;
  }
}

function onMessage(c: Client, line: string, at: number): void {
  frames++;
  if (firstAt === 0) firstAt = at;
  lastAt = at;
  const seqAt = line.lastIndexOf('"seq":');
  const seq = seqAt < 0 ? NaN : parseInt(line.slice(seqAt + 6), 10);
  if (!(seq > c.lastSeq)) outOfOrder++;
  c.lastSeq = seq;
  if (c.ids) {
    const idAt = line.indexOf('"id":"') + 6;
    const id = line.slice(idAt, line.indexOf('"', idAt));
    c.ids.set(id, (c.ids.get(id) ?? 0) + 1);
  }
  if (measureLatency) {
    const bodyAt = line.indexOf('"body":"');
    const sent = bodyAt < 0 ? NaN : parseFloat(line.slice(bodyAt + 8, bodyAt + 40));
    if (Number.isFinite(sent)) recordLatency(at - sent, sent);
  }
}

function onOther(c: Client, line: string, onSubscribed?: () => void): void {
  let f: Frame;
  try {
    f = JSON.parse(line);
  } catch {
    errorFrames++;
    errorSample ??= `unparsable frame: ${line.slice(0, 200)}`;
    return;
  }
  if (f.type === 'subscribed') {
    onSubscribed?.();
  } else if (f.type === 'error') {
    errorFrames++;
    errorSample ??= `${f.code}: ${f.message}`;
  }
}

function connect(url: string, index: number, rooms: number, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeoutMs });
    const c: Client = { ws, room: roomName(index % rooms), lastSeq: 0, ids: track ? new Map() : undefined, closing: false };
    let settled = false;
    const timer = setTimeout(() => fail(new Error('no subscribed frame in time')), timeoutMs);
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(err);
    };
    ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', room: c.room })));
    ws.on('message', (data) =>
      onFrame(c, data, () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clients.push(c);
        resolve();
      }),
    );
    ws.on('error', (err) => fail(err));
    ws.on('close', (code) => {
      if (!settled) return fail(new Error(`closed ${code} before subscribed`));
      if (!c.closing) unexpectedCloses[code] = (unexpectedCloses[code] ?? 0) + 1;
    });
  });
}

async function open(a: OpenArgs): Promise<OpenResult> {
  track = a.track;
  return openMany(a, (i) => connect(a.url, i, a.rooms, a.timeoutMs ?? 20_000));
}


function reset(a: { latency?: boolean } = {}): void {
  frames = 0;
  firstAt = 0;
  lastAt = 0;
  outOfOrder = 0;
  errorFrames = 0;
  errorSample = undefined;
  latencyCount = 0;
  measureLatency = a.latency ?? true;
  for (const c of clients) c.ids?.clear();
}

function stats(): ClientStats {
  return {
    sockets: clients.length,
    open: clients.filter((c) => c.ws.readyState === WebSocket.OPEN).length,
    frames,
    firstAt,
    lastAt,
    outOfOrder,
    errorFrames,
    errorSample,
    unexpectedCloses,
  };
}

function verify(a: { acceptedByRoom: Record<string, string[]> }): VerifyResult {
  const acceptedSets = new Map<string, Set<string>>();
  for (const [room, ids] of Object.entries(a.acceptedByRoom)) acceptedSets.set(room, new Set(ids));
  let lost = 0;
  let duplicates = 0;
  let unexpected = 0;
  let expected = 0;
  let lostSample: string | undefined;
  for (const c of clients) {
    if (!c.ids) throw new Error('verify needs sockets opened with track: true');
    const accepted = a.acceptedByRoom[c.room] ?? [];
    expected += accepted.length;
    for (const id of accepted) {
      if (!c.ids.has(id)) {
        lost++;
        lostSample ??= `socket of ${c.room} (state ${c.ws.readyState}) never got ${id}`;
      }
    }
    const set = acceptedSets.get(c.room);
    for (const [id, n] of c.ids) {
      if (n > 1) duplicates += n - 1;
      if (!set?.has(id)) unexpected++;
    }
  }
  return { lost, duplicates, unexpected, expected, lostSample };
}

function takeLatencies(): Float64Array {
  return latencies.slice(0, latencyCount);
}

function takeSentTimes(): Float64Array {
  return sentTimes.slice(0, latencyCount);
}

/** One extra socket that subscribes with `after` and reads the whole replay; resolves when seq reaches the head. */
function replay(a: { url: string; room: string; after: number; timeoutMs: number }) {
  return new Promise<{ count: number; head: number; ms: number; outOfOrder: number; firstSeq: number; lastSeq: number }>((resolve, reject) => {
    const ws = new WebSocket(a.url, { perMessageDeflate: false });
    let head = -1;
    let count = 0;
    let bad = 0;
    let firstSeq = 0;
    let lastSeq = a.after;
    let t0 = 0;
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`replay incomplete after ${a.timeoutMs} ms: ${count} messages, last seq ${lastSeq}, head ${head}`));
    }, a.timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      const ms = nowMs() - t0;
      ws.terminate();
      resolve({ count, head, ms, outOfOrder: bad, firstSeq, lastSeq });
    };
    ws.on('open', () => {
      t0 = nowMs();
      ws.send(JSON.stringify({ type: 'subscribe', room: a.room, after: a.after }));
    });
    ws.on('message', (data) => {
      for (const line of data.toString().split('\n')) onReplayFrame(JSON.parse(line) as Frame);
    });
    const onReplayFrame = (f: Frame) => {
      if (f.type === 'subscribed') {
        head = f.head!;
        if (head <= a.after) finish();
      } else if (f.type === 'message') {
        count++;
        if (firstSeq === 0) firstSeq = f.seq!;
        if (!(f.seq! > lastSeq)) bad++;
        lastSeq = f.seq!;
        if (head >= 0 && lastSeq >= head) finish();
      } else if (f.type === 'error') {
        clearTimeout(timer);
        ws.terminate();
        reject(new Error(`error frame during replay: ${f.code}: ${f.message}`));
      }
    };
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function close(): Promise<{ closed: number }> {
  const n = clients.length;
  for (const c of clients) {
    c.closing = true;
    c.ws.close(1000);
  }
  // Give the closing handshakes a moment, then cut whatever is left.
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline && clients.some((c) => c.ws.readyState !== WebSocket.CLOSED)) await sleep(50);
  for (const c of clients) c.ws.terminate();
  clients.length = 0;
  return { closed: n };
}

serve({ open, reset, stats, verify, latencies: takeLatencies, sentTimes: takeSentTimes, replay, close });
