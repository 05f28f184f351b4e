/** Turning a failed flag validation into the one line of a usage error. */
import type { z } from 'zod';
import { URL_ENV } from './redis-target.js';

/**
 * The one line a usage error shows for a failed flag validation: the first issue, with the flag
 * put in front of zod's own messages (ours already name their flag, and never echo a value).
 */
export function firstIssueMessage(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid arguments';
  return issue.code === 'custom' || issue.message.includes('--') || issue.message.includes(URL_ENV)
    ? issue.message
    : `--${issue.path.join('.')}: ${issue.message}`;
}
