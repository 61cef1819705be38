export {
  type CannedAnswer,
  type CannedMessage,
  type CannedReply,
  type CannedRequest,
  replyMessage,
} from './canned-reply.js';
export type { PartialPayload, PayloadMatcher } from './payload-matcher.js';
export type { RecordedPublish, RecordedReply, RecordedSend } from './recorded.js';
export { NoCannedReplyError, type RecordedRequest } from './scripted-replies.js';
export {
  createTestContext,
  type TestContextOptions,
  type TestHandlerContext,
} from './test-context.js';
export {
  createTestEndpoint,
  type TestEndpoint,
  type TestEndpointOptions,
} from './test-endpoint.js';
