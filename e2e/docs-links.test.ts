/**
 * Every relative link in the repository's Markdown (README.md, docs/, the packages' READMEs)
 * leads somewhere: the file or directory exists, and a `#anchor` names a heading of the target
 * as GitHub renders it (or an explicit `<a id>`). Links inside code blocks, inline code and HTML
 * comments are not links; `http(s):` and `mailto:` links are not checked (no network).
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/index.js';

/** Directories never searched for Markdown. */
const SKIPPED_DIRS = new Set(['node_modules', '.git', 'dist', 'results']);

/** Every `.md` file under `dir`, as absolute paths. */
function markdownFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      if (!SKIPPED_DIRS.has(entry.name)) out.push(...markdownFiles(join(dir, entry.name)));
    } else if (entry.name.endsWith('.md')) {
      out.push(join(dir, entry.name));
    }
  }
  return out;
}

/** The text outside fenced code blocks and HTML comments, line by line (code lines blanked). */
function proseLines(markdown: string): string[] {
  const lines = markdown.replace(/<!--[\s\S]*?-->/g, (c) => c.replace(/[^\n]/g, ' ')).split('\n');
  let fence: string | undefined;
  return lines.map((line) => {
    const m = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
    if (fence !== undefined) {
      if (m?.[1] && m[1][0] === fence[0] && m[1].length >= fence.length && line.trim() === m[1]) fence = undefined;
      return '';
    }
    if (m?.[1]) {
      fence = m[1];
      return '';
    }
    return line;
  });
}

/** A line without its inline code spans (`` `a` ``, ``` `` a`b `` ```). */
function withoutCodeSpans(line: string): string {
  return line.replace(/(`+)(?:(?!\1)[\s\S])*?\1/g, ' ');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slugOf(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link shows its text
    .replace(/`/g, '')
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '').replace(/ /g, '-');
}

/** The anchors a Markdown file offers: its headings' slugs (repeats get -1, -2…) and `<a id|name>`. */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of proseLines(markdown)) {
    const heading = /^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(line);
    if (heading) {
      const slug = slugOf(heading[1] ?? '');
      const n = seen.get(slug) ?? 0;
      seen.set(slug, n + 1);
      anchors.add(n === 0 ? slug : `${slug}-${n}`);
    }
    for (const a of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(a[1] ?? '');
  }
  return anchors;
}

/** The link targets of a Markdown file: inline links and images, and reference definitions. */
export function linksOf(markdown: string): string[] {
  const out: string[] = [];
  for (const raw of proseLines(markdown)) {
    const line = withoutCodeSpans(raw);
    for (const m of line.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push(m[1] ?? '');
    const def = /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/.exec(line);
    if (def?.[1]) out.push(def[1]);
  }
  return out;
}

/** Why `target`, linked from `file`, leads nowhere; undefined when it resolves. */
export function problemOf(file: string, target: string, readTarget = (path: string) => readFileSync(path, 'utf8')): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return undefined; // http:, https:, mailto:
  const hash = target.indexOf('#');
  const pathPart = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
  const anchor = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1));
  const path = pathPart === '' ? file : resolve(dirname(file), pathPart);
  if (pathPart !== '' && !existsSync(path)) return `${target}: no such file or directory`;
  if (anchor === undefined) return undefined;
  if (pathPart !== '' && (statSync(path).isDirectory() || !path.endsWith('.md'))) return `${target}: an anchor into something that is not a Markdown file`;
  if (!anchorsOf(readTarget(path)).has(anchor)) return `${target}: no heading or <a id> with anchor #${anchor}`;
  return undefined;
}

describe('links in the documentation', () => {
  it('GitHub anchors are computed as GitHub renders them', () => {
    expect(slugOf('`redisfs fsck`: check a filesystem')).toBe('redisfs-fsck-check-a-filesystem');
    expect(slugOf('Scaling out: Redis Cluster and Sentinel')).toBe('scaling-out-redis-cluster-and-sentinel');
    expect(slugOf('Redis Cluster and `--sync-replicas`')).toBe('redis-cluster-and---sync-replicas');
    expect(slugOf('Logs, status and metrics')).toBe('logs-status-and-metrics');
    expect(slugOf('Mounting at boot: fstab and systemd')).toBe('mounting-at-boot-fstab-and-systemd');
    const doc = '# A\n\n## Same\n\n```sh\n# not a heading\n```\n\n## Same\n<a id="here"></a>\n';
    expect([...anchorsOf(doc)].sort()).toEqual(['a', 'here', 'same', 'same-1']);
  });

  it('the checker finds a broken file link and a broken anchor, and ignores code and comments', () => {
    const doc = [
      'See [the README](../README.md#quick-start), [gone](no-such-file.md),',
      '[bad anchor](../README.md#no-such-heading) and [here](#local).',
      '',
      '## Local',
      '',
      '`[not a link](nowhere.md)` <!-- [commented](nowhere.md) -->',
      '```',
      '[in code](nowhere.md)',
      '```',
    ].join('\n');
    const file = join(REPO_ROOT, 'docs', 'example.md');
    const read = (path: string) => (path === file ? doc : readFileSync(path, 'utf8'));
    expect(linksOf(doc)).toEqual(['../README.md#quick-start', 'no-such-file.md', '../README.md#no-such-heading', '#local']);
    const problems = linksOf(doc).map((target) => problemOf(file, target, read)).filter((p) => p !== undefined);
    expect(problems).toEqual([
      'no-such-file.md: no such file or directory',
      '../README.md#no-such-heading: no heading or <a id> with anchor #no-such-heading',
    ]);
  });

  it('every relative link in README.md, docs/ and the packages resolves', () => {
    const files = markdownFiles(REPO_ROOT);
    const names = files.map((f) => relative(REPO_ROOT, f));
    expect(names).toContain('README.md');
    expect(names.some((n) => n.startsWith('docs/'))).toBe(true);
    let checked = 0;
    const broken: string[] = [];
    for (const file of files) {
      for (const target of linksOf(readFileSync(file, 'utf8'))) {
        checked += 1;
        const problem = problemOf(file, target);
        if (problem) broken.push(`${relative(REPO_ROOT, file)}: ${problem}`);
      }
    }
    expect(checked).toBeGreaterThan(20);
    expect(broken, broken.join('\n')).toEqual([]);
  });
});
