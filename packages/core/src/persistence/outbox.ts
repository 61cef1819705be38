import type { ContextHost, MessageHandlerContext } from '../endpoint/handler-context.js';
import { EndpointStateError } from '../errors.js';
import type { EndpointInstrumentation } from '../instrumentation/instrumentation.js';
import { type LongTimer, setLongTimeout } from '../long-timer.js';
import type {
  MessageOutcome,
  TransportEndpoint,
  TransportOperation,
} from '../transport/transport.js';
import { errorMessage, newId } from '../util.js';
import { dispatchStored } from './dispatch-stored.js';
import { inboxKey, transactionKeyPrefix } from './inbox-key.js';
import { type LocalClaim, LocalClaims } from './local-claims.js';
import { OutboxDispatcher } from './outbox-dispatcher.js';
import type { ResolvedOutboxOptions } from './outbox-options.js';
import type { EndpointStorage, Persistence, StorageTransaction } from './persistence.js';
import { attachStorageSession } from './storage-session.js';
import { OutboxTransactionScope, type TransactionScope } from './transaction-scope.js';

/** An attempt that failed, for the recoverability policy once the attempt is over. */
interface AttemptFailure {
  readonly error: unknown;
}

const isFailure = (outcome: MessageOutcome | AttemptFailure): outcome is AttemptFailure =>
  typeof outcome === 'object' && 'error' in outcome;

/** What the outbox needs from its endpoint. */
export interface OutboxHost extends ContextHost {
  readonly options: ContextHost['options'] & { readonly stopTimeoutMs: number };
  readonly transportEndpoint: TransportEndpoint;
  readonly counters: { handled: number; undeliverableReplies: number; duplicates: number };
  readonly shutdownSignal: AbortSignal;
  readonly instrumentation: EndpointInstrumentation | undefined;
}

/**
 * An endpoint's outbox and inbox: runs each handling attempt in a storage transaction, dispatches
 * after commit, and runs the background dispatcher. See docs/adr/0012-outbox-and-inbox.md.
 */
export class EndpointOutbox {
  private storage: EndpointStorage | undefined;
  private dispatcher: OutboxDispatcher | undefined;
  /** What this process's attempts claim: see `LocalClaims`. */
  private readonly localClaims = new LocalClaims();
  /** `endpoint.transaction` calls under way: stop lets them finish before the transport closes. */
  private readonly transactions = new Set<Promise<unknown>>();

  constructor(
    private readonly persistence: Persistence,
    private readonly options: ResolvedOutboxOptions,
    private readonly host: OutboxHost,
  ) {}

  /** The store's durable request records, once open; undefined when it keeps none. */
  get durableRequestStore() {
    return this.storage?.requests;
  }

  /** At `endpoint.start()`, once the transport is open. */
  async start(): Promise<void> {
    const { endpointName, options } = this.host;
    this.storage = await this.persistence.open({ endpointName, logger: options.logger });
    this.dispatcher = new OutboxDispatcher(
      this.storage,
      this.host.transportEndpoint,
      this.options,
      options.logger,
    );
    this.dispatcher.start();
  }

  /** At `endpoint.stop()`, after in-flight messages, before the transport closes. */
  async stop(): Promise<void> {
    if (this.transactions.size > 0) {
      let timer: LongTimer | undefined;
      await Promise.race([
        Promise.allSettled(this.transactions),
        new Promise<void>((resolve) => {
          timer = setLongTimeout(resolve, this.host.options.stopTimeoutMs);
        }),
      ]);
      timer?.clear();
    }
    await this.dispatcher?.stop();
    await this.storage?.close();
  }

  /** Sends what commits left undispatched now, rather than at the dispatcher's next interval. */
  sweep(): Promise<number> {
    if (this.dispatcher === undefined) return Promise.reject(this.notStarted());
    return this.dispatcher.sweep();
  }

  /**
   * One handling attempt in a transaction: claim the message, run the handlers with the session,
   * store what they send, commit, dispatch. A duplicate is settled from its record instead. A
   * failure rolls back before `failed` (the recoverability policy) runs, so a retry starts clean.
   */
  async attempt(
    messageId: string,
    context: MessageHandlerContext,
    invoke: () => void | Promise<void>,
    failed: (error: unknown) => Promise<MessageOutcome>,
  ): Promise<MessageOutcome> {
    const storage = this.storage;
    if (storage === undefined) return failed(this.notStarted());
    const key = inboxKey(messageId);
    let transaction: StorageTransaction;
    try {
      transaction = await storage.begin();
    } catch (error) {
      return failed(error);
    }
    const local = this.localClaims.enter(key);
    let outcome: MessageOutcome | AttemptFailure;
    try {
      outcome = await this.attemptClaimed(key, messageId, transaction, local, context, invoke);
    } finally {
      this.localClaims.leave(local);
    }
    // The next attempt (a retry) must not see this one as holding the key: it has rolled back.
    return isFailure(outcome) ? failed(outcome.error) : outcome;
  }

  private async attemptClaimed(
    key: string,
    messageId: string,
    transaction: StorageTransaction,
    local: LocalClaim,
    context: MessageHandlerContext,
    invoke: () => void | Promise<void>,
  ): Promise<MessageOutcome | AttemptFailure> {
    let committed = false;
    let operations: readonly TransportOperation[] = [];
    try {
      const claim = await transaction.claim(key);
      if (claim.kind === 'duplicate') {
        this.host.counters.duplicates++;
        await transaction.rollback();
        context.close();
        const { record } = claim;
        this.host.options.logger.debug('A message already handled here was received again', {
          messageId,
          dispatched: record.dispatched,
        });
        if (record.dispatched || this.localClaims.claimedByAnother(local)) return 'complete';
        return await this.dispatchRecord(key, record.operations, messageId);
      }
      this.localClaims.claimed(local);
      attachStorageSession(context, transaction.session);
      await invoke();
      await context.whenBuilt();
      context.close();
      // Stopped past the deadline: the message is being abandoned, nothing of it may commit.
      if (this.host.shutdownSignal.aborted) {
        await this.rollbackQuietly(transaction, messageId);
        return 'abandon';
      }
      operations =
        context.replies.length === 0 ? context.outgoing : [...context.outgoing, ...context.replies];
      this.host.instrumentation?.storing?.(operations);
      await transaction.store(key, operations);
      await transaction.commit();
      committed = true;
    } catch (error) {
      // A failed commit has finished the transaction (and may have committed: the retry's claim
      // tells); anything before it is rolled back so that nothing is written.
      if (!committed) await this.rollbackQuietly(transaction, messageId);
      return { error };
    }
    if (operations.length === 0) {
      this.host.counters.handled++;
      return 'complete';
    }
    const dispatched = await this.dispatchRecord(key, operations, messageId);
    if (dispatched === 'complete') this.host.counters.handled++;
    return dispatched;
  }

  /** `endpoint.transaction(fn)`: the caller's writes and its messages commit together. */
  transaction<R>(fn: (scope: TransactionScope) => R | Promise<R>): Promise<R> {
    const running = this.runTransaction(fn);
    const forget = (): void => {
      this.transactions.delete(tracked);
    };
    const tracked: Promise<void> = running.then(forget, forget);
    this.transactions.add(tracked);
    return running;
  }

  private async runTransaction<R>(fn: (scope: TransactionScope) => R | Promise<R>): Promise<R> {
    const storage = this.storage;
    if (storage === undefined) throw this.notStarted();
    const key = `${transactionKeyPrefix}${newId()}`;
    const transaction = await storage.begin();
    const scope = new OutboxTransactionScope(this.host, transaction.session);
    attachStorageSession(scope, transaction.session);
    let result: R;
    let committed = false;
    try {
      await transaction.claim(key);
      result = await fn(scope);
      await scope.finish();
      this.host.instrumentation?.storing?.(scope.operations);
      await transaction.store(key, scope.operations);
      await transaction.commit();
      committed = true;
    } catch (error) {
      if (!committed) await this.rollbackQuietly(transaction, key);
      throw error;
    }
    if (scope.operations.length > 0) await this.dispatchRecord(key, scope.operations, key);
    return result;
  }

  /**
   * Sends a committed record's operations and marks it dispatched. A refused dispatch is the
   * attempt's failure: the recoverability policy retries the message, whose next attempt finds
   * the record and sends it (as does the background dispatcher), or moves it on.
   */
  private async dispatchRecord(
    key: string,
    operations: readonly TransportOperation[],
    messageId: string,
  ): Promise<'complete' | AttemptFailure> {
    const { logger } = this.host.options;
    try {
      const dropped = await dispatchStored(this.host.transportEndpoint, operations);
      if (dropped > 0) {
        this.host.counters.undeliverableReplies += dropped;
        logger.warn(
          'Dropped a reply whose queue no longer exists, so nobody can receive it (the requester stopped and its queue expired, or it was deleted)',
          { messageId },
        );
      }
    } catch (error) {
      logger.warn(
        'Could not dispatch committed outgoing messages; they are sent when the message is tried again or by the outbox dispatcher',
        { messageId, error: errorMessage(error) },
      );
      return { error };
    }
    try {
      await (this.storage as EndpointStorage).markDispatched(key);
    } catch (error) {
      // Sent already: at worst the dispatcher sends them again, with the same ids.
      logger.warn('Could not mark outgoing messages dispatched; they may be sent again', {
        messageId,
        error: errorMessage(error),
      });
    }
    return 'complete';
  }

  private async rollbackQuietly(transaction: StorageTransaction, messageId: string) {
    try {
      await transaction.rollback();
    } catch (error) {
      // The store has released the connection: nothing was committed, which is all that matters.
      this.host.options.logger.warn('Rolling back a storage transaction failed', {
        messageId,
        error: errorMessage(error),
      });
    }
  }

  private notStarted(): EndpointStateError {
    return new EndpointStateError(
      `Endpoint '${this.host.endpointName}' is not started: its persistence is not open.`,
    );
  }
}
