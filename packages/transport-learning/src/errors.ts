import {
  DestinationNotFoundError,
  TidingsError,
  TransportError,
  TransportUnavailableError,
} from '@tidings/core';

/** What the transport was doing when a file-system call failed. */
export interface FsErrorContext {
  /** Short description for the message, e.g. `write a message`. */
  readonly operation: string;
  /** The file or directory involved. Paths are not secrets. */
  readonly path?: string;
  /** The destination queue: ENOENT while writing into it means the queue does not exist. */
  readonly destination?: string;
}

function codeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** Maps a Node.js file-system error onto core's error taxonomy. The original error is the `cause`. */
export function mapFsError(error: unknown, context: FsErrorContext): TidingsError {
  if (error instanceof TidingsError) return error;
  const code = codeOf(error);
  const where = context.path === undefined ? '' : ` (${context.path})`;
  const what = `Could not ${context.operation}${where}`;
  switch (code) {
    case 'ENOENT':
      if (context.destination !== undefined) {
        return new DestinationNotFoundError(context.destination, { cause: error });
      }
      return new TransportError(
        `${what}: it does not exist. Was the transport's root directory deleted while in use?`,
        { cause: error },
      );
    case 'ENOSPC':
    case 'EDQUOT':
      return new TransportError(
        `${what}: the disk is full (${code}). Free space or point rootDir elsewhere.`,
        { cause: error, isRetryable: true },
      );
    case 'EACCES':
    case 'EPERM':
      return new TransportError(
        `${what}: permission denied (${code}). The process needs read and write access to the transport's root directory.`,
        { cause: error },
      );
    case 'EROFS':
      return new TransportError(`${what}: the file system is read-only.`, { cause: error });
    case 'EMFILE':
    case 'ENFILE':
    case 'EBUSY':
    case 'EAGAIN':
      return new TransportUnavailableError(`${what}: ${code}, try again later.`, { cause: error });
    default:
      return new TransportError(`${what}: ${code ?? String(error)}.`, { cause: error });
  }
}

/** True for the error a rename or unlink gets when another process moved the file first. */
export function isGone(error: unknown): boolean {
  return codeOf(error) === 'ENOENT';
}
