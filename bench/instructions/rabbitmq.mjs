// One process, client and server endpoints on RabbitMQ: run under callgrind to count the
// instructions Tidings and amqplib spend per message, whatever the machine's load.
// Usage: valgrind --tool=callgrind --callgrind-out-file=/dev/null node --single-threaded \
//   bench/instructions/rabbitmq.mjs <checkout with built dist> <messages> <queue name tag>
const root = process.argv[2];
const n = Number(process.argv[3] ?? 2000);
const tag = process.argv[4] ?? 'x';
const { createEndpoint, defineMessage, silentLogger } = await import(
  `${root}/packages/core/dist/index.js`
);
const { createRabbitMqTransport } = await import(
  `${root}/packages/transport-rabbitmq/dist/index.js`
);
const Ping = defineMessage('cg.Ping');
const Pong = defineMessage('cg.Pong');
const url = 'amqp://guest:guest@127.0.0.1:5672';
const transport = createRabbitMqTransport({ url, queueType: 'classic' });
const serverName = `cg.Server.${tag}`;
const server = createEndpoint({
  name: serverName,
  transport,
  logger: silentLogger,
  instanceId: 's',
});
let handled = 0;
let done;
server.handle(Ping, async (m, ctx) => {
  handled++;
  if (m.reply) await ctx.reply(Pong, { n: m.n });
  else if (handled === n && done) done();
});
const client = createEndpoint({
  name: `cg.Client.${tag}`,
  transport,
  logger: silentLogger,
  instanceId: 'c',
  routes: { 'cg.Ping': serverName },
});
await server.start();
await client.start();
const finished = new Promise((r) => (done = r));
for (let i = 0; i < n; i++) await client.send(Ping, { n: i });
await finished;
for (let i = 0; i < n / 2; i++) await client.request(Ping, { n: i, reply: true }, { expect: Pong });
await client.stop();
await server.stop();
