import { ConfigurationError } from '@tidings/core';

/**
 * Service Bus's documented limits (learn.microsoft.com, "Service Bus quotas" and the entity
 * properties of the management API) that the transport checks before the service refuses them.
 */
export const serviceBusLimits = {
  /** Premium tier's largest message; Standard allows 256 KiB. */
  maxMessageSizeBytes: 100 * 1024 * 1024,
  /** `autoDeleteOnIdle`: at least 5 minutes. */
  minAutoDeleteOnIdleMs: 5 * 60_000,
  /** Duplicate detection history window: 20 seconds to 7 days. */
  minDuplicateDetectionWindowMs: 20_000,
  maxDuplicateDetectionWindowMs: 7 * 24 * 60 * 60_000,
  /** Peek-lock duration: 5 seconds to 5 minutes. */
  minLockDurationMs: 5_000,
  maxLockDurationMs: 5 * 60_000,
  /** One application property (name plus value), in bytes. */
  maxPropertyBytes: 32 * 1024,
  /** All application properties of a message together, in bytes. */
  maxPropertiesBytes: 64 * 1024,
} as const;

/** A whole number of milliseconds or bytes within the service's range, or a ConfigurationError. */
export function checkServiceRange(
  name: string,
  value: unknown,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `between ${min} and ${max}`;
    throw new ConfigurationError(
      `${name} must be a whole number ${range} (Service Bus's limit), got ${String(value)}.`,
    );
  }
  return value;
}
