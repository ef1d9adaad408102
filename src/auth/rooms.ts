import { ROOM } from '../domain/message.ts';

/** Rooms a token allows, in the form the store filters by (in SQL). `undefined` means every room. */
export interface RoomFilter {
  exact: string[];
  prefixes: string[];
}

const PREFIX = /^[A-Za-z0-9_.:-]{0,63}$/;

/**
 * A token's `rooms` claim: exact names, `prefix*` entries, or `*` for every room.
 * Built once per token; `allows` is a set lookup plus a few prefix checks.
 */
export class RoomAccess {
  readonly all: boolean;
  private readonly exact: Set<string>;
  private readonly prefixes: string[];

  private constructor(all: boolean, exact: Set<string>, prefixes: string[]) {
    this.all = all;
    this.exact = exact;
    this.prefixes = prefixes;
  }

  static readonly everything = new RoomAccess(true, new Set(), []);

  /** Parses a `rooms` claim; undefined when it is not a list of valid entries. */
  static parse(claim: unknown): RoomAccess | undefined {
    if (!Array.isArray(claim) || claim.length > 1000) return undefined;
    const exact = new Set<string>();
    const prefixes: string[] = [];
    let all = false;
    for (const entry of claim) {
      if (typeof entry !== 'string') return undefined;
      if (entry === '*') all = true;
      else if (entry.endsWith('*') && PREFIX.test(entry.slice(0, -1))) prefixes.push(entry.slice(0, -1));
      else if (ROOM.test(entry)) exact.add(entry);
      else return undefined;
    }
    return all ? RoomAccess.everything : new RoomAccess(false, exact, prefixes);
  }

  allows(room: string): boolean {
    if (this.all || this.exact.has(room)) return true;
    for (const p of this.prefixes) if (room.startsWith(p)) return true;
    return false;
  }

  /** The SQL-side filter; undefined when every room is allowed. */
  filter(): RoomFilter | undefined {
    return this.all ? undefined : { exact: [...this.exact], prefixes: this.prefixes };
  }
}
