import type { EntityOptions } from './entities.js';
import { BadRequest, formatDuration, parseDuration } from './management-xml.js';

/** What a PUT's description sets on a queue or subscription, within Service Bus's ranges. */

/** Service Bus's default duplicate detection window when none is given. */
export const DEFAULT_DUPLICATE_WINDOW_MS = 10 * 60_000;

/** The entity path of a forwardTo value; the SDK sends it absolute (`sb://host/queue`). */
function forwardPath(value: string): string {
  const scheme = value.indexOf('://');
  if (scheme < 0) return value;
  const slash = value.indexOf('/', scheme + 3);
  return slash < 0 ? '' : value.slice(slash + 1);
}

/**
 * Service Bus's ranges for entity settings (learn.microsoft.com, "Service Bus quotas" and the
 * QueueDescription reference): it answers 400 to a create outside them.
 */
const RANGES = {
  autoDeleteOnIdleMs: [5 * 60_000, Number.MAX_SAFE_INTEGER],
  duplicateDetectionWindowMs: [20_000, 7 * 24 * 60 * 60_000],
  lockDurationMs: [5_000, 5 * 60_000],
} as const;

function checkRange(name: keyof typeof RANGES, field: string, ms: number | undefined): void {
  const [min, max] = RANGES[name];
  if (ms !== undefined && (ms < min || ms > max)) {
    throw new BadRequest(
      `The value supplied for ${field} is out of range: it must be between ${formatDuration(min)} and ${max === Number.MAX_SAFE_INTEGER ? 'TimeSpan.MaxValue' : formatDuration(max)}. SubCode=40000.`,
    );
  }
}

/** EntityOptions from a QueueDescription or SubscriptionDescription (names as in the SDK's build*Options). */
export function entityOptions(fields: Map<string, string>): EntityOptions {
  if (fields.get('RequiresSession') === 'true') {
    throw new BadRequest('Sessions are not modelled by the test peer.');
  }
  const maxDeliveryCount = fields.get('MaxDeliveryCount');
  const lockDuration = parseDuration(fields.get('LockDuration'));
  const autoDelete = parseDuration(fields.get('AutoDeleteOnIdle'));
  const forwardTo = fields.get('ForwardTo');
  const duplicateDetection = fields.get('RequiresDuplicateDetection') === 'true';
  checkRange('autoDeleteOnIdleMs', 'AutoDeleteOnIdle', autoDelete);
  checkRange('lockDurationMs', 'LockDuration', lockDuration);
  if (duplicateDetection) {
    checkRange(
      'duplicateDetectionWindowMs',
      'DuplicateDetectionHistoryTimeWindow',
      parseDuration(fields.get('DuplicateDetectionHistoryTimeWindow')),
    );
  }
  return {
    ...(autoDelete !== undefined ? { autoDeleteOnIdleMs: autoDelete } : {}),
    ...(maxDeliveryCount !== undefined ? { maxDeliveryCount: Number(maxDeliveryCount) } : {}),
    ...(lockDuration !== undefined ? { lockDurationMs: lockDuration } : {}),
    ...(duplicateDetection
      ? {
          duplicateDetectionWindowMs:
            parseDuration(fields.get('DuplicateDetectionHistoryTimeWindow')) ??
            DEFAULT_DUPLICATE_WINDOW_MS,
        }
      : {}),
    ...(forwardTo ? { forwardTo: forwardPath(forwardTo) } : {}),
  };
}
