import {
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { isGone, mapLearningError } from './errors.js';
import {
  claimedName,
  delayedName,
  dirs,
  encodeTypeName,
  instanceHolder,
  instanceMarker,
  newFileId,
  parseClaimed,
  parseDelayed,
  parseReady,
  readyName,
} from './file-names.js';
import { decodeEnvelope, type Envelope, encodeEnvelope } from './learning-headers.js';

/** A message this process holds: its file sits in the queue's `.claimed` folder under our name. */
export interface Claim {
  readonly queue: string;
  readonly id: string;
  /** 1 on first delivery. */
  readonly delivery: number;
  readonly path: string;
}

/** A message file written to `.tmp`, waiting to be renamed into its queue (or `.delayed`). */
export interface StagedMessage {
  readonly tmpPath: string;
  readonly finalPath: string;
  readonly queue: string;
  /** Set for a published copy: the event type whose subscriber `queue` is. */
  readonly messageType?: string | undefined;
}

/** Every file-system operation of the transport. Each state change is one rename. */
export class FileStore {
  constructor(
    readonly root: string,
    private readonly fsyncWrites: boolean,
  ) {}

  queueDir(queue: string): string {
    return join(this.root, queue);
  }

  private claimedDir(queue: string): string {
    return join(this.root, queue, dirs.claimed);
  }

  async prepare(): Promise<void> {
    await this.fs('create the transport directories', this.root, async () => {
      for (const dir of Object.values(dirs)) {
        if (dir !== dirs.claimed) await mkdir(join(this.root, dir), { recursive: true });
      }
    });
  }

  async ensureQueue(queue: string, instance: boolean): Promise<void> {
    await this.fs('create a queue', this.queueDir(queue), async () => {
      await mkdir(this.claimedDir(queue), { recursive: true });
      if (instance) await this.touch(join(this.queueDir(queue), instanceMarker));
    });
  }

  async queueExists(queue: string): Promise<boolean> {
    try {
      return (await stat(this.queueDir(queue))).isDirectory();
    } catch (error) {
      if (isGone(error)) return false;
      throw mapLearningError(error, { operation: 'look up a queue', path: this.queueDir(queue) });
    }
  }

  /** Writes the file under `.tmp`; nothing reads it until `commit` renames it into place. */
  async stage(
    envelope: Envelope,
    queue: string,
    dueAt?: number,
    messageType?: string,
  ): Promise<StagedMessage> {
    const id = newFileId();
    const tmpPath = join(this.root, dirs.tmp, `${id}~${queue}.tmp`);
    const finalPath =
      dueAt === undefined
        ? join(this.queueDir(queue), readyName(id, 0))
        : join(this.root, dirs.delayed, delayedName(dueAt, id, queue));
    const bytes = encodeEnvelope(envelope);
    await this.fs('write a message', tmpPath, async () => {
      if (!this.fsyncWrites) {
        await writeFile(tmpPath, bytes);
        return;
      }
      const handle = await open(tmpPath, 'w');
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
    });
    return { tmpPath, finalPath, queue, messageType };
  }

  /** Makes a staged message visible: one rename, so no reader sees half a file. */
  async commit(staged: StagedMessage): Promise<void> {
    try {
      await rename(staged.tmpPath, staged.finalPath);
    } catch (error) {
      await unlink(staged.tmpPath).catch(() => {});
      throw mapLearningError(error, {
        operation: 'deliver a message',
        path: staged.finalPath,
        destination: staged.queue,
      });
    }
  }

  async discard(staged: StagedMessage): Promise<void> {
    await unlink(staged.tmpPath).catch(() => {});
  }

  /** Ready message file names, oldest first. */
  async listReady(queue: string): Promise<string[]> {
    const names = await this.fs('list a queue', this.queueDir(queue), () =>
      readdir(this.queueDir(queue)),
    );
    return names.filter((name) => parseReady(name) !== undefined).sort();
  }

  /** Takes a ready message for `owner`. Undefined when another receiver was faster. */
  async claim(queue: string, name: string, owner: string): Promise<Claim | undefined> {
    const ready = parseReady(name);
    if (ready === undefined) return undefined;
    const delivery = ready.deliveries + 1;
    const path = join(this.claimedDir(queue), claimedName(ready.id, delivery, owner));
    try {
      await rename(join(this.queueDir(queue), name), path);
    } catch (error) {
      if (isGone(error)) return undefined;
      throw mapLearningError(error, { operation: 'claim a message', path });
    }
    return { queue, id: ready.id, delivery, path };
  }

  async read(claim: Claim): Promise<Envelope> {
    const bytes = await this.fs('read a message', claim.path, () => readFile(claim.path));
    return decodeEnvelope(bytes, claim.id);
  }

  /** Deletes a handled message. False if it was no longer ours (another receiver took it back). */
  async complete(claim: Claim): Promise<boolean> {
    try {
      await unlink(claim.path);
      return true;
    } catch (error) {
      if (isGone(error)) return false;
      throw mapLearningError(error, { operation: 'remove a handled message', path: claim.path });
    }
  }

  /**
   * Puts a claimed message back at the front of its queue, its delivery counted unless it was
   * never handed to anyone (`counted: false`).
   */
  async release(claim: Claim, counted = true): Promise<boolean> {
    const deliveries = counted ? claim.delivery : claim.delivery - 1;
    const target = join(this.queueDir(claim.queue), readyName(claim.id, deliveries));
    try {
      await rename(claim.path, target);
      return true;
    } catch (error) {
      if (isGone(error)) return false;
      throw mapLearningError(error, {
        operation: 'return a message to its queue',
        path: claim.path,
      });
    }
  }

  /**
   * Returns to the queue every message claimed by an owner that `isAbandoned` says is gone.
   * Resolves with how many came back.
   */
  async reclaim(
    queue: string,
    ownOwner: string,
    isAbandoned: (owner: string, pid: number) => Promise<boolean>,
  ): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.claimedDir(queue));
    } catch (error) {
      if (isGone(error)) return 0;
      throw mapLearningError(error, {
        operation: 'list claimed messages',
        path: this.claimedDir(queue),
      });
    }
    let count = 0;
    for (const name of names) {
      const claimed = parseClaimed(name);
      if (claimed === undefined || claimed.owner === ownOwner) continue;
      if (!(await isAbandoned(claimed.owner, claimed.pid))) continue;
      const released = await this.release({
        queue,
        id: claimed.id,
        delivery: claimed.delivery,
        path: join(this.claimedDir(queue), name),
      });
      if (released) count++;
    }
    return count;
  }

  /**
   * Moves delayed messages that are due into their queues. A message whose queue does not exist
   * stays where it is and is reported once per call.
   */
  async moveDue(
    now: number,
    onMissingQueue: (queue: string, file: string) => void,
  ): Promise<number> {
    const dir = join(this.root, dirs.delayed);
    const names = (await this.fs('list delayed messages', dir, () => readdir(dir))).sort();
    let moved = 0;
    for (const name of names) {
      const delayed = parseDelayed(name);
      if (delayed === undefined) continue;
      // Names sort by due time: the first one not due ends the scan.
      if (delayed.dueAt > now) break;
      const from = join(dir, name);
      try {
        await rename(from, join(this.queueDir(delayed.queue), readyName(delayed.id, 0)));
        moved++;
      } catch (error) {
        if (!isGone(error))
          throw mapLearningError(error, { operation: 'move a due message', path: from });
        // Gone: another process moved it. Still here: its queue is missing.
        if (await this.exists(from)) onMissingQueue(delayed.queue, from);
      }
    }
    return moved;
  }

  async subscribe(messageType: string, queue: string): Promise<void> {
    const dir = join(this.root, dirs.subscriptions, encodeTypeName(messageType));
    await this.fs('record a subscription', dir, async () => {
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, queue), '');
    });
  }

  async unsubscribe(messageType: string, queue: string): Promise<void> {
    const path = join(this.root, dirs.subscriptions, encodeTypeName(messageType), queue);
    try {
      await unlink(path);
    } catch (error) {
      if (!isGone(error))
        throw mapLearningError(error, { operation: 'remove a subscription', path });
    }
  }

  /** The queues subscribed to a message type, read from disk on every call (other processes subscribe too). */
  async subscribers(messageType: string): Promise<string[]> {
    const dir = join(this.root, dirs.subscriptions, encodeTypeName(messageType));
    try {
      return (await readdir(dir)).sort();
    } catch (error) {
      if (isGone(error)) return [];
      throw mapLearningError(error, { operation: 'read subscriptions', path: dir });
    }
  }

  async heartbeat(owner: string): Promise<void> {
    await this.touch(join(this.root, dirs.owners, owner));
  }

  async removeOwner(owner: string): Promise<void> {
    await unlink(join(this.root, dirs.owners, owner)).catch(() => {});
  }

  /** When an owner last beat, or undefined if it has no heartbeat file (it closed). */
  async lastHeartbeat(owner: string): Promise<number | undefined> {
    try {
      return (await stat(join(this.root, dirs.owners, owner))).mtimeMs;
    } catch (error) {
      if (isGone(error)) return undefined;
      throw mapLearningError(error, { operation: 'read a heartbeat', path: owner });
    }
  }

  /**
   * Marks `owner` as the process receiving from an instance queue. Resolves with the owner that
   * holds it already instead, unless `isGone` says that one has stopped or died.
   */
  async holdInstanceQueue(
    queue: string,
    owner: string,
    isGone: (holder: string) => Promise<boolean>,
  ): Promise<string | undefined> {
    const path = join(this.queueDir(queue), instanceHolder);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await writeFile(path, owner, { flag: 'wx' });
        return undefined;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw mapLearningError(error, { operation: 'hold an instance queue', path });
        }
      }
      const holder = await readFile(path, 'utf8').catch(() => '');
      if (holder === owner) return undefined;
      if (holder !== '' && !(await isGone(holder))) return holder;
      await unlink(path).catch(() => {});
    }
    return undefined;
  }

  /** Gives up an instance queue this owner holds. */
  async releaseInstanceQueue(queue: string, owner: string): Promise<void> {
    const path = join(this.queueDir(queue), instanceHolder);
    if ((await readFile(path, 'utf8').catch(() => '')) === owner)
      await unlink(path).catch(() => {});
  }

  async touchInstanceQueue(queue: string): Promise<void> {
    await this.touch(join(this.queueDir(queue), instanceMarker));
  }

  /**
   * Removes an instance queue that holds nothing, when its receiver stops cleanly. It is first
   * moved aside in one rename, so a reply written meanwhile either lands before (and the queue is
   * put back, to wait for a restart or expiry) or finds no queue (the sender's reply is
   * undeliverable, as to an expired queue). Returns whether it was removed.
   */
  async removeInstanceQueueIfEmpty(queue: string): Promise<boolean> {
    const dir = this.queueDir(queue);
    const aside = join(this.root, dirs.tmp, `${queue}~${newFileId()}.removed`);
    try {
      await rename(dir, aside);
    } catch (error) {
      if (isGone(error)) return false;
      throw mapLearningError(error, { operation: 'remove an instance queue', path: dir });
    }
    const left = (await readdir(aside)).filter(
      (name) => name !== instanceMarker && name !== instanceHolder && name !== dirs.claimed,
    );
    const claimed = await readdir(join(aside, dirs.claimed)).catch(() => [] as string[]);
    if (left.length === 0 && claimed.length === 0) {
      await rm(aside, { recursive: true, force: true });
      return true;
    }
    // Something arrived in between: put it back. If a restart has made the queue again
    // meanwhile, move the files into it one by one instead.
    try {
      await rename(aside, dir);
    } catch {
      await mkdir(this.claimedDir(queue), { recursive: true });
      for (const name of left) await rename(join(aside, name), join(dir, name));
      for (const name of claimed) {
        await rename(join(aside, dirs.claimed, name), join(this.claimedDir(queue), name));
      }
      await rm(aside, { recursive: true, force: true });
    }
    return false;
  }

  /**
   * Deletes instance queues unused for `expiryMs`, and files in `.tmp` and `.owners` older than
   * that. Returns the deleted queues.
   */
  async expire(now: number, expiryMs: number, keep: ReadonlySet<string>): Promise<string[]> {
    const deleted: string[] = [];
    const entries = await this.fs('list queues', this.root, () =>
      readdir(this.root, { withFileTypes: true }),
    );
    for (const entry of entries) {
      if (!entry.isDirectory() || entry.name.startsWith('.') || keep.has(entry.name)) continue;
      const marker = join(this.root, entry.name, instanceMarker);
      const touched = await stat(marker).then(
        (s) => s.mtimeMs,
        () => undefined,
      );
      if (touched === undefined || now - touched < expiryMs) continue;
      await rm(join(this.root, entry.name), { recursive: true, force: true });
      deleted.push(entry.name);
    }
    // Half-written files of processes that died mid-write, and heartbeats of dead receivers.
    for (const dir of [join(this.root, dirs.tmp), join(this.root, dirs.owners)]) {
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const path = join(dir, name);
        const written = await stat(path).then(
          (s) => s.mtimeMs,
          () => now,
        );
        if (now - written >= expiryMs) await unlink(path).catch(() => {});
      }
    }
    return deleted;
  }

  private async exists(path: string): Promise<boolean> {
    return stat(path).then(
      () => true,
      () => false,
    );
  }

  private async touch(path: string): Promise<void> {
    const now = new Date();
    try {
      await utimes(path, now, now);
    } catch (error) {
      if (!isGone(error)) throw mapLearningError(error, { operation: 'update', path });
      await this.fs('create', path, () => writeFile(path, ''));
    }
  }

  private async fs<T>(operation: string, path: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw mapLearningError(error, { operation, path });
    }
  }
}
