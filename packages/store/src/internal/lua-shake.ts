/**
 * Drops the top-level local functions a script never calls. Every script starts with the same
 * shared chunks (key functions, the inode codec and accessors, LUA_COMMON), and Redis runs a
 * script's whole chunk at every call: each `local function` is a closure made again each time
 * (about 0.1 µs apiece; the shared chunks define some 70). Keeping only what a script refers to
 * makes every call cheaper without splitting the shared chunks by hand.
 *
 * Conservative by construction: a function is kept when its name appears as a word anywhere in
 * the rest of the script (statements, the script's body, comments) or in a function kept, so a
 * function that is called is never dropped. It relies on the layout of the scripts' source: a
 * top-level function starts at column 0 with `local function NAME(` and is either one line
 * ending in ` end`, or ends at the next line that is exactly `end`.
 */
const START = /^local function ([A-Za-z_][A-Za-z0-9_]*)\(/;

interface Block {
  name: string;
  from: number;
  to: number;
}

export function shakeLua(src: string): string {
  const lines = src.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = START.exec(lines[i]!);
    if (!m) continue;
    let to = i;
    if (!/ end$/.test(lines[i]!)) {
      while (to < lines.length && lines[to] !== 'end') to++;
      if (to === lines.length) return src; // not the layout this expects: leave the script whole
    }
    blocks.push({ name: m[1]!, from: i, to });
    i = to;
  }
  const inBlock = new Array<boolean>(lines.length).fill(false);
  for (const b of blocks) for (let i = b.from; i <= b.to; i++) inBlock[i] = true;
  const textOf = (b: Block) => lines.slice(b.from, b.to + 1).join('\n');
  const words = (text: string) => new Set(text.match(/[A-Za-z_][A-Za-z0-9_]*/g) ?? []);
  const seen = words(lines.filter((_, i) => !inBlock[i]).join('\n'));
  const kept = new Set<Block>();
  for (let grew = true; grew; ) {
    grew = false;
    for (const b of blocks) {
      if (kept.has(b) || !seen.has(b.name)) continue;
      kept.add(b);
      for (const w of words(textOf(b))) seen.add(w);
      grew = true;
    }
  }
  const drop = new Array<boolean>(lines.length).fill(false);
  for (const b of blocks) if (!kept.has(b)) for (let i = b.from; i <= b.to; i++) drop[i] = true;
  return lines.filter((_, i) => !drop[i]).join('\n');
}
