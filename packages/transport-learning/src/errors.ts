import {
  DestinationNotFoundError,
  mapNativeError,
  type NativeErrorContext,
  type NativeErrorFacts,
  type NativeErrorTable,
  type TidingsError,
  TransportError,
  TransportUnavailableError,
} from '@tidings/core/transport';

/** What the transport was doing when a file-system call failed. */
export interface LearningErrorContext extends NativeErrorContext {
  /** Short description for the message, e.g. `write a message`. */
  readonly operation: string;
  /** The file or directory involved. Paths are not secrets. */
  readonly path?: string;
  /** The destination queue: ENOENT while writing into it means the queue does not exist. */
  readonly destination?: string;
}

/**
 * Node.js file-system errors by code, worded `Could not <operation> (<path>): ...`. Every case is
 * here (the default included), so messages keep that one form.
 */
const fileSystemTable: NativeErrorTable = {
  system: 'Learning transport',
  map({ error, code: anyCode, cause }: NativeErrorFacts, context: NativeErrorContext) {
    const { path } = context as LearningErrorContext;
    const code = typeof anyCode === 'string' ? anyCode : undefined;
    const where = path === undefined ? '' : ` (${path})`;
    const what = `Could not ${context.operation}${where}`;
    switch (code) {
      case 'ENOENT':
        if (context.destination !== undefined) {
          return new DestinationNotFoundError(context.destination, { cause });
        }
        return new TransportError(
          `${what}: it does not exist. Was the transport's root directory deleted while in use?`,
          { cause },
        );
      case 'ENOSPC':
      case 'EDQUOT':
        return new TransportError(
          `${what}: the disk is full (${code}). Free space or point rootDir elsewhere.`,
          { cause, isRetryable: true },
        );
      case 'EACCES':
      case 'EPERM':
        return new TransportError(
          `${what}: permission denied (${code}). The process needs read and write access to the transport's root directory.`,
          { cause },
        );
      case 'EROFS':
        return new TransportError(`${what}: the file system is read-only.`, { cause });
      case 'EMFILE':
      case 'ENFILE':
      case 'EBUSY':
      case 'EAGAIN':
        return new TransportUnavailableError(`${what}: ${code}, try again later.`, { cause });
      default:
        return new TransportError(`${what}: ${code ?? String(error)}.`, { cause });
    }
  },
};

/**
 * Maps a Node.js file-system error onto core's error taxonomy; a `TidingsError` passes through.
 * The original error is the `cause` (file-system errors carry paths, no secrets).
 */
export function mapLearningError(error: unknown, context: LearningErrorContext): TidingsError {
  return mapNativeError(error, context, fileSystemTable);
}

/** True for the error a rename or unlink gets when another process moved the file first. */
export function isGone(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'ENOENT';
}
