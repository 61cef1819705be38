/**
 * The Service Bus test peer in a process of its own, as a broker runs apart from its clients: its
 * CPU then counts against neither side. Sends `{ connectionString, certificate }` to the parent
 * once listening, answers `'cpu'` with its CPU time so far (µs), and closes when the parent
 * disconnects.
 */
import { startServiceBusPeer } from '@tidings/servicebus-peer';

const peer = await startServiceBusPeer();
process.send?.({ connectionString: peer.connectionString, certificate: peer.certificate });
process.on('message', (message) => {
  if (message !== 'cpu') return;
  const { user, system } = process.cpuUsage();
  process.send?.({ cpuMicros: user + system });
});
process.once('disconnect', () => {
  void peer.close().finally(() => process.exit(0));
});
