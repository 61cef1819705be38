export {
  type DescribeTransportOptions,
  describeTransport,
  type PackedHeadersAccess,
} from './describe-transport.js';
export { recordingLogger } from './recording-logger.js';
export { createScope, type ScopeHelpers, type TestScope } from './scope.js';
export { type ProxyInterceptor, startTcpProxy, type TcpProxy } from './tcp-proxy.js';
