/**
 * `redisfs-snapshot`: take, list, delete and restore point-in-time snapshots of redisfs
 * filesystems inside one Redis server. Errors are one line on stderr; exit code 1 on failure or
 * refusal, 2 on a usage error.
 */
import { hideBin } from 'yargs/helpers';
import {
  deleteFilesystem, listFilesystems, restoreFilesystem, snapshotFilesystem, type CopyProgress, type DeleteProgress,
} from '@redisfs/store';
import { endQuietlyOnClosedOutput, exitCodeOf, resolveDefaultRedis, scrubSecrets, secretsOfCommandLine, stderrProgress, type Progress } from '@redisfs/cli-common';
import { parseSnapshotArgs } from './args.js';
import { formatList, formatTime } from './format.js';

async function main(args: string[]): Promise<number> {
  const secrets = secretsOfCommandLine(args);
  const out = (line: string) => process.stdout.write(`${scrubSecrets(line, secrets)}\n`);
  // Progress of the long commands on stderr (stdout keeps the result line).
  let progress: Progress | undefined;
  const startProgress = (label: string) => (progress = stderrProgress(`redisfs-snapshot: ${label}`, (text) => scrubSecrets(text, secrets)));
  try {
    const command = await parseSnapshotArgs(args);
    // Told nothing: 127.0.0.1:6379, or else the private server (started if need be), held until
    // this process exits (the hold does not keep it alive).
    if (command.kind !== 'done' && command.target.url === undefined && command.target.socket === undefined) {
      command.target.socket = (await resolveDefaultRedis())?.socket;
    }
    switch (command.kind) {
      case 'done':
        return 0;
      case 'snapshot':
      case 'restore': {
        const copy = command.kind === 'snapshot' ? snapshotFilesystem : restoreFilesystem;
        const started = Date.now();
        const shown = startProgress(
          command.kind === 'snapshot' ? `snapshot of '${command.from}' as '${command.to}'` : `restoring '${command.from}' into '${command.to}'`,
        );
        const { copiedKeys, deletedKeys, atNs } = await copy({
          ...command.target,
          from: command.from,
          to: command.to,
          force: command.force,
          onProgress: (p) => shown.update({ ...p, ...copyPhase(p.phase, command.to) }),
        });
        shown.finish();
        const replaced = deletedKeys > 0 ? `, after deleting ${deletedKeys} keys of '${command.to}'` : '';
        const verb = command.kind === 'snapshot' ? 'snapshot of' : 'restored';
        out(
          `${verb} '${command.from}' ${command.kind === 'snapshot' ? 'as' : 'into'} '${command.to}' at ${formatTime(atNs)} ` +
            `(${copiedKeys} keys in ${((Date.now() - started) / 1000).toFixed(1)} s${replaced})`,
        );
        return 0;
      }
      case 'list': {
        const all = await listFilesystems(command.target);
        const shown = command.of === undefined ? all : all.filter((fs) => fs.snapshot?.of === command.of);
        for (const line of formatList(shown)) out(line);
        return 0;
      }
      case 'delete': {
        const shown = startProgress(`deleting '${command.prefix}'`);
        const { deletedKeys } = await deleteFilesystem({
          ...command.target,
          prefix: command.prefix,
          onlySnapshot: !command.force,
          onProgress: (p) => shown.update({ ...p, ...DELETE_PHASES[p.phase] }),
        });
        shown.finish();
        out(`deleted '${command.prefix}' (${deletedKeys} keys)`);
        return 0;
      }
    }
  } catch (err) {
    progress?.abort();
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`redisfs-snapshot: ${scrubSecrets(message, secrets)}\n`);
    return exitCodeOf(err);
  }
}

/** How the phases of a copy and of a delete read, and what they count. */
function copyPhase(phase: CopyProgress['phase'], to: string): { phase: string; unit: string } {
  if (phase === 'replacing') return { phase: `deleting the old '${to}'`, unit: 'inodes' };
  return phase === 'freeing' ? { phase: 'freeing its blocks', unit: 'blocks' } : { phase: 'copying', unit: 'inodes' };
}
const DELETE_PHASES: Record<DeleteProgress['phase'], { phase: string; unit: string }> = {
  releasing: { phase: 'metadata', unit: 'inodes' },
  freeing: { phase: 'data blocks', unit: 'blocks' },
};

endQuietlyOnClosedOutput();
process.exitCode = await main(hideBin(process.argv));
