/**
 * Who is in which room, as soft state: pure bookkeeping, no I/O, no timers (the caller passes
 * `now`). A user is present in a room while at least one source holds them there: this node
 * (its own sockets, counted) or a remote node (what that node last said, kept while the node
 * keeps showing signs of life). `onChange` reports a user's first source appearing (join) and
 * last one going (leave), only for rooms this node serves: nobody here would see the others.
 */
export type PresenceChange = { type: 'join' | 'leave'; room: string; user: string };

export class PresenceBook {
  private readonly ttlMs: number;
  private readonly onChange: (change: PresenceChange) => void;
  /** room -> user -> number of this node's sockets of that user subscribed to the room */
  private readonly local = new Map<string, Map<string, number>>();
  /** room -> node -> users that node holds in the room (rooms this node serves only) */
  private readonly remote = new Map<string, Map<string, Set<string>>>();
  /** room -> user -> number of sources (this node counts once, each remote node once) */
  private readonly present = new Map<string, Map<string, number>>();
  /** node -> when its entries expire unless it shows a sign of life again */
  private readonly nodes = new Map<string, number>();
  /** rooms whose remote presence this node follows (it has local subscribers there) */
  private readonly served = new Set<string>();

  constructor(ttlMs: number, onChange: (change: PresenceChange) => void) {
    this.ttlMs = ttlMs;
    this.onChange = onChange;
  }

  /** This node starts following `room`: remote news about it are kept from now on. */
  serve(room: string): void {
    this.served.add(room);
  }

  /** This node stops following `room` (no local subscriber left): its remote entries are dropped silently. */
  unserve(room: string): void {
    this.served.delete(room);
    const byNode = this.remote.get(room);
    if (byNode) for (const users of byNode.values()) for (const u of users) this.dec(room, u, false);
    this.remote.delete(room);
  }

  /** One more local socket of `user` in `room`; true when it is the user's first on this node. */
  addLocal(room: string, user: string): boolean {
    let users = this.local.get(room);
    if (!users) this.local.set(room, (users = new Map()));
    const n = users.get(user) ?? 0;
    users.set(user, n + 1);
    if (n === 0) this.inc(room, user);
    return n === 0;
  }

  /** One local socket of `user` fewer in `room`; true when it was the user's last on this node. */
  removeLocal(room: string, user: string): boolean {
    const users = this.local.get(room);
    const n = users?.get(user);
    if (!users || n === undefined) return false;
    if (n > 1) {
      users.set(user, n - 1);
      return false;
    }
    users.delete(user);
    if (users.size === 0) this.local.delete(room);
    this.dec(room, user, true);
    return true;
  }

  /** This node's users of `room` (what it tells the others). */
  localUsers(room: string): string[] {
    return [...(this.local.get(room)?.keys() ?? [])];
  }

  /** Every room with a local user, with those users (a node's full announcement). */
  localSnapshot(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const [room, users] of this.local) out[room] = [...users.keys()];
    return out;
  }

  /** Everyone present in `room` as far as this node knows (local and remote). */
  users(room: string): string[] {
    return [...(this.present.get(room)?.keys() ?? [])];
  }

  /** `node` showed a sign of life at `now`: its entries live at least another TTL. */
  seen(node: string, now: number): void {
    this.nodes.set(node, now + this.ttlMs);
  }

  /** Nodes heard from within their TTL. */
  liveNodes(now: number): string[] {
    return [...this.nodes].filter(([, until]) => until > now).map(([n]) => n);
  }

  remoteJoin(node: string, room: string, user: string, now: number): void {
    this.seen(node, now);
    if (!this.served.has(room)) return;
    const set = this.nodeSet(room, node);
    if (set.has(user)) return;
    set.add(user);
    this.inc(room, user);
  }

  remoteLeave(node: string, room: string, user: string, now: number): void {
    this.seen(node, now);
    const set = this.remote.get(room)?.get(node);
    if (!set?.delete(user)) return;
    if (set.size === 0) this.remote.get(room)!.delete(node);
    this.dec(room, user, true);
  }

  /** `node` says these are all its users of `room` (a snapshot replaces what it said before). */
  remoteState(node: string, room: string, users: readonly string[], now: number): void {
    this.seen(node, now);
    if (!this.served.has(room)) return;
    const next = new Set(users);
    const before = this.remote.get(room)?.get(node);
    if (before) for (const u of [...before]) if (!next.has(u)) this.remoteLeave(node, room, u, now);
    for (const u of next) this.remoteJoin(node, room, u, now);
  }

  /** `node` announced everything it holds: rooms it does not name have none of its users any more. */
  remoteFullState(node: string, rooms: Record<string, readonly string[]>, now: number): void {
    this.seen(node, now);
    for (const room of this.served) this.remoteState(node, room, rooms[room] ?? [], now);
  }

  /** `node` is gone (said goodbye, or its TTL passed): its users leave. */
  dropNode(node: string): void {
    this.nodes.delete(node);
    for (const [room, byNode] of this.remote) {
      const users = byNode.get(node);
      if (!users) continue;
      byNode.delete(node);
      if (byNode.size === 0) this.remote.delete(room);
      for (const u of users) this.dec(room, u, true);
    }
  }

  /** Drops every node not heard from within the TTL; returns them. */
  expire(now: number): string[] {
    const gone: string[] = [];
    for (const [node, until] of this.nodes) if (until <= now) gone.push(node);
    for (const node of gone) this.dropNode(node);
    return gone;
  }

  /** Sizes, for tests and metrics: bounded by what is served, not by what was ever seen. */
  get stats(): { rooms: number; nodes: number } {
    return { rooms: this.present.size, nodes: this.nodes.size };
  }

  private nodeSet(room: string, node: string): Set<string> {
    let byNode = this.remote.get(room);
    if (!byNode) this.remote.set(room, (byNode = new Map()));
    let set = byNode.get(node);
    if (!set) byNode.set(node, (set = new Set()));
    return set;
  }

  private inc(room: string, user: string): void {
    let users = this.present.get(room);
    if (!users) this.present.set(room, (users = new Map()));
    const n = users.get(user) ?? 0;
    users.set(user, n + 1);
    if (n === 0 && this.served.has(room)) this.onChange({ type: 'join', room, user });
  }

  private dec(room: string, user: string, announce: boolean): void {
    const users = this.present.get(room);
    const n = users?.get(user);
    if (!users || n === undefined) return;
    if (n > 1) return void users.set(user, n - 1);
    users.delete(user);
    if (users.size === 0) this.present.delete(room);
    if (announce && this.served.has(room)) this.onChange({ type: 'leave', room, user });
  }
}
