export {
  type CannedAnswer,
  type CannedMessage,
  type CannedReply,
  type CannedRequest,
  replyMessage,
} from './canned-reply.js';
export type { PartialPayload, PayloadMatcher } from './payload-matcher.js';
export type { RecordedPublish, RecordedReply, RecordedSend } from './recorded.js';
export {
  createTestContext,
  type TestContextOptions,
  type TestHandlerContext,
} from './test-context.js';
export {
  createTestEndpoint,
  NoCannedReplyError,
  type RecordedRequest,
  type TestEndpoint,
  type TestEndpointOptions,
} from './test-endpoint.js';
