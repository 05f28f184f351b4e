/**
 * What the command lines of the `redisfs` subcommands about one filesystem (`fsck`, `upgrade`)
 * share: `--prefix` and the Redis address flags, strict parsing, help and version, and every
 * yargs complaint as one UsageError line that names the subcommand's --help.
 */
import { createRequire } from 'node:module';
import yargs, { type Options } from 'yargs';
import { REDIS_TARGET_OPTIONS, UsageError } from '@redisfs/cli-common';

/** The package's version, for --version. */
export const VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

/**
 * What every `redisfs <name>` parser has: its name and usage, and every yargs complaint as one
 * UsageError line that names `redisfs <name> --help`. The caller adds its options, then
 * `.help().version(VERSION)` (last, so that they are listed last).
 */
export function subcommandParser(name: string, args: string[], usage: string) {
  return yargs(args)
    .scriptName(`redisfs ${name}`)
    .usage(usage)
    .locale('en')
    .exitProcess(false)
    .fail((message, err) => {
      throw new UsageError(`${message ?? err?.message ?? 'invalid arguments'} (see redisfs ${name} --help)`);
    });
}

/**
 * A yargs parser for `redisfs <name> <args>` about one filesystem: `--prefix`, the subcommand's
 * own `options`, then the Redis address flags.
 */
export function prefixSubcommandParser<O extends Record<string, Options>>(
  name: string,
  args: string[],
  text: { usage: string; epilogue: string },
  options: O = {} as O,
) {
  return subcommandParser(name, args, text.usage)
    .option('prefix', { type: 'string', demandOption: true, describe: 'filesystem prefix in Redis' })
    .options(options)
    .options(REDIS_TARGET_OPTIONS)
    .epilogue(text.epilogue)
    .strict()
    .help()
    .version(VERSION);
}
