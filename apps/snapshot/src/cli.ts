/**
 * `redisfs-snapshot`: take, list, delete and restore point-in-time snapshots of redisfs
 * filesystems inside one Redis server. Errors are one line on stderr; exit code 1 on failure or
 * refusal, 2 on a usage error.
 */
import { hideBin } from 'yargs/helpers';
import { deleteFilesystem, listFilesystems, restoreFilesystem, snapshotFilesystem } from '@redisfs/store';
import { exitCodeOf, findPrivateRedis, scrubSecrets, secretsOfCommandLine } from '@redisfs/cli-common';
import { parseSnapshotArgs } from './args.js';
import { formatList, formatTime } from './format.js';

async function main(args: string[]): Promise<number> {
  const secrets = secretsOfCommandLine(args);
  const out = (line: string) => process.stdout.write(`${scrubSecrets(line, secrets)}\n`);
  try {
    const command = await parseSnapshotArgs(args);
    // Told nothing: the default address, or the private server `redisfs` starts when that is silent.
    if (command.kind !== 'done' && command.target.url === undefined && command.target.socket === undefined) {
      command.target.socket = await findPrivateRedis();
    }
    switch (command.kind) {
      case 'done':
        return 0;
      case 'snapshot':
      case 'restore': {
        const copy = command.kind === 'snapshot' ? snapshotFilesystem : restoreFilesystem;
        const started = Date.now();
        const { copiedKeys, deletedKeys, atNs } = await copy({
          ...command.target,
          from: command.from,
          to: command.to,
          force: command.force,
        });
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
        const { deletedKeys } = await deleteFilesystem({
          ...command.target,
          prefix: command.prefix,
          onlySnapshot: !command.force,
        });
        out(`deleted '${command.prefix}' (${deletedKeys} keys)`);
        return 0;
      }
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`redisfs-snapshot: ${scrubSecrets(message, secrets)}\n`);
    return exitCodeOf(err);
  }
}

process.exitCode = await main(hideBin(process.argv));
