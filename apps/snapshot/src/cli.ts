/**
 * `redisfs-snapshot`: copy, list and delete redisfs filesystems inside one Redis server.
 * Errors are one line on stderr; exit code 1 on failure or refusal, 2 on a usage error.
 */
import { hideBin } from 'yargs/helpers';
import { deleteFilesystem, listFilesystems, snapshotFilesystem } from '@redisfs/store';
import { exitCodeOf, scrubSecrets, secretsOfCommandLine } from '@redisfs/cli-common';
import { parseSnapshotArgs } from './args.js';
import { formatList } from './format.js';

async function main(args: string[]): Promise<number> {
  const secrets = secretsOfCommandLine(args);
  const out = (line: string) => process.stdout.write(`${scrubSecrets(line, secrets)}\n`);
  try {
    const command = await parseSnapshotArgs(args);
    switch (command.kind) {
      case 'done':
        return 0;
      case 'copy': {
        const { copiedKeys, deletedKeys } = await snapshotFilesystem({
          ...command.target,
          from: command.from,
          to: command.to,
          force: command.force,
        });
        const replaced = deletedKeys > 0 ? `, after deleting ${deletedKeys} keys of '${command.to}'` : '';
        out(`copied '${command.from}' to '${command.to}' (${copiedKeys} keys${replaced})`);
        return 0;
      }
      case 'list':
        for (const line of formatList(await listFilesystems(command.target))) out(line);
        return 0;
      case 'delete': {
        const { deletedKeys } = await deleteFilesystem({ ...command.target, prefix: command.prefix });
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
