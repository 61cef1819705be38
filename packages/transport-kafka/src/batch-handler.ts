import type { MessageOutcome } from '@tidings/core';
import type { BatchControl, IncomingRecord, RecordBatch } from './kafka-client.js';
import type { Semaphore } from './semaphore.js';

export interface BatchHandlerDeps {
  readonly slots: Semaphore;
  /** Hands one record to core. Never rejects. */
  deliver(record: IncomingRecord, batch: RecordBatch): Promise<MessageOutcome>;
  /** True once the endpoint stops receiving: records not yet handed over stay for the next owner. */
  isStopping(): boolean;
  /** Wait before handing an abandoned record over again. */
  readonly redeliveryDelayMs: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Handles one partition's batch. Records run concurrently (bounded by the shared slots), except
 * records with the same key, which run one after another in offset order. The position committed
 * at the end is just past the longest prefix of records whose outcome is durable, so nothing is
 * committed before it is handled, retried or moved to the error topic.
 */
export async function handleBatch(
  batch: RecordBatch,
  control: BatchControl,
  deps: BatchHandlerDeps,
): Promise<void> {
  const records = batch.records;
  const done = new Array<boolean>(records.length).fill(false);
  const tails = new Map<string | null, Promise<boolean>>();
  const canContinue = () => control.isActive() && !deps.isStopping();

  const run = async (
    index: number,
    record: IncomingRecord,
    previous: Promise<boolean> | undefined,
  ) => {
    // A record waits for the one before it with its key; if that one is left for later, so is this.
    if (previous !== undefined && !(await previous)) return false;
    for (;;) {
      if (!canContinue()) return false;
      await deps.slots.acquire();
      let outcome: MessageOutcome;
      try {
        if (!canContinue()) return false;
        outcome = await deps.deliver(record, batch);
      } finally {
        deps.slots.release();
      }
      if (outcome === 'complete') {
        done[index] = true;
        void control.heartbeat();
        return true;
      }
      // Abandoned while still running (its outcome could not be made durable): try it again here
      // rather than rewinding the partition and replaying everything after it.
      await sleep(deps.redeliveryDelayMs);
    }
  };

  const tasks = records.map((record, index) => {
    const task = run(index, record, tails.get(record.key));
    tails.set(record.key, task);
    return task;
  });
  await Promise.all(tasks);

  let prefix = 0;
  while (prefix < records.length && done[prefix]) prefix++;
  const last = records[prefix - 1];
  // Stopping or rebalancing: commit now, while this member still owns the partition.
  if (last !== undefined) {
    await control.commit((BigInt(last.offset) + 1n).toString(), !canContinue());
  }
}
