import { createHash, randomBytes } from 'node:crypto';
import { InvalidDestinationError } from '@tidings/core';

/**
 * The on-disk layout. Every state a message is in shows in its file name, so each move between
 * states is one atomic rename, and of two processes renaming the same file exactly one succeeds.
 *
 *   <root>/<queue>/<id>.<deliveries>.msg                      ready
 *   <root>/<queue>/.claimed/<id>.<delivery>.<owner>.msg       being handled by <owner>
 *   <root>/<queue>/.instance                                  marks an instance queue; mtime = last use
 *   <root>/.delayed/<dueMs>~<id>~<queue>.msg                  due later
 *   <root>/.subscriptions/<message type>/<queue>              a subscription (empty file)
 *   <root>/.owners/<owner>                                    a receiving process's heartbeat
 *   <root>/.tmp/                                              files being written
 *
 * `<id>` starts with the time it was written, so sorting names gives first-in, first-out.
 * `<owner>` is `<pid>-<token>`: the process, and which transport in it.
 */
export const dirs = {
  claimed: '.claimed',
  delayed: '.delayed',
  subscriptions: '.subscriptions',
  owners: '.owners',
  tmp: '.tmp',
} as const;

export const instanceMarker = '.instance';
/** In an instance queue: the owner id of the live process that receives from it. */
export const instanceHolder = '.holder';
const suffix = '.msg';

let counter = 0;
const processTag = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;

/** A new message file id: time first (ordering), then a per-process counter (uniqueness). */
export function newFileId(now = Date.now()): string {
  counter = (counter + 1) % 36 ** 7;
  return `${String(now).padStart(14, '0')}-${counter.toString(36).padStart(7, '0')}-${processTag}`;
}

export function newOwnerId(): string {
  return `${process.pid}-${randomBytes(4).toString('hex')}`;
}

export function readyName(id: string, deliveries: number): string {
  return `${id}.${deliveries}${suffix}`;
}

export function parseReady(name: string): { id: string; deliveries: number } | undefined {
  if (!name.endsWith(suffix) || name.startsWith('.')) return undefined;
  const parts = name.slice(0, -suffix.length).split('.');
  if (parts.length !== 2) return undefined;
  const deliveries = Number(parts[1]);
  if (!Number.isSafeInteger(deliveries) || deliveries < 0) return undefined;
  return { id: parts[0] as string, deliveries };
}

export function claimedName(id: string, delivery: number, owner: string): string {
  return `${id}.${delivery}.${owner}${suffix}`;
}

export function parseClaimed(
  name: string,
): { id: string; delivery: number; owner: string; pid: number } | undefined {
  if (!name.endsWith(suffix)) return undefined;
  const parts = name.slice(0, -suffix.length).split('.');
  if (parts.length !== 3) return undefined;
  const [id, deliveryText, owner] = parts as [string, string, string];
  const delivery = Number(deliveryText);
  const pid = Number(owner.split('-')[0]);
  if (!Number.isSafeInteger(delivery) || !Number.isSafeInteger(pid) || pid <= 0) return undefined;
  return { id, delivery, owner, pid };
}

export function delayedName(dueAt: number, id: string, queue: string): string {
  return `${String(Math.ceil(dueAt)).padStart(14, '0')}~${id}~${queue}${suffix}`;
}

export function parseDelayed(
  name: string,
): { dueAt: number; id: string; queue: string } | undefined {
  if (!name.endsWith(suffix)) return undefined;
  const parts = name.slice(0, -suffix.length).split('~');
  if (parts.length !== 3) return undefined;
  const [due, id, queue] = parts as [string, string, string];
  const dueAt = Number(due);
  if (!Number.isSafeInteger(dueAt) || id === '' || queue === '') return undefined;
  return { dueAt, id, queue };
}

/**
 * Longest encoded type name kept whole: file systems take 255 bytes per name, and escapes triple
 * a character (`:` is `%3a`).
 */
const MAX_TYPE_FOLDER_LENGTH = 200;
/** What is kept of a longer one, before its hash. */
const LONG_TYPE_PREFIX_LENGTH = 120;

/**
 * Message type names may hold ':' (not allowed on Windows) and may be '.' or '..'; escape what a
 * file name cannot carry, keep the rest readable. An encoding longer than a file name may be is
 * cut, and the SHA-256 of the whole type name follows a `~`: escaped names never hold `~` (it is
 * escaped), so a cut name never equals a whole one, and the hash tells cut names apart.
 */
export function encodeTypeName(messageType: string): string {
  const escaped = messageType.replace(
    /[^A-Za-z0-9_.-]/g,
    (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
  const name = /^\.*$/.test(escaped) ? escaped.replaceAll('.', '%2e') : escaped;
  if (name.length <= MAX_TYPE_FOLDER_LENGTH) return name;
  // Cut before a partial escape, so what is kept still reads as the type's start.
  const prefix = name.slice(0, LONG_TYPE_PREFIX_LENGTH).replace(/%[0-9a-f]{0,1}$/, '');
  return `${prefix}~${createHash('sha256').update(messageType).digest('hex')}`;
}

/**
 * Longest queue name: a delayed message's file name holds it after about 50 characters of due
 * time and id, and file names end at 255 bytes. Core's rule allows 201 (an instance queue).
 */
const MAX_QUEUE_NAME_LENGTH = 201;

/**
 * Defence in depth under core's destination rule: a queue name must be one folder directly under
 * the root, and not one of the transport's own (they start with '.').
 */
export function isQueueFolderName(queue: string): boolean {
  return (
    queue.length > 0 &&
    queue.length <= MAX_QUEUE_NAME_LENGTH &&
    !queue.startsWith('.') &&
    !/[/\\\0:]/.test(queue)
  );
}

/** Throws `InvalidDestinationError` for a name `isQueueFolderName` refuses. */
export function checkQueueFolderName(queue: string): string {
  if (!isQueueFolderName(queue)) {
    throw new InvalidDestinationError(queue, 'The learning transport refuses queue');
  }
  return queue;
}
