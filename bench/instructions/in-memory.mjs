// One process, client and server endpoints on the in-memory transport: run under callgrind to
// count the instructions Tidings spends per message, whatever the machine's load.
// Usage: valgrind --tool=callgrind --callgrind-out-file=/dev/null node --single-threaded \
//   bench/instructions/in-memory.mjs <checkout with built dist> <messages>
const root = process.argv[2];
const n = Number(process.argv[3] ?? 5000);
const core = await import(`${root}/packages/core/dist/index.js`);
const { createEndpoint, createInMemoryTransport, defineMessage, silentLogger } = core;
const Ping = defineMessage('cg.Ping');
const Pong = defineMessage('cg.Pong');
const transport = createInMemoryTransport();
const server = createEndpoint({ name: 'cg.Server', transport, logger: silentLogger });
let handled = 0;
let done;
server.handle(Ping, async (m, ctx) => {
  handled++;
  if (m.reply) await ctx.reply(Pong, { n: m.n });
  if (handled === n && done) done();
});
const client = createEndpoint({
  name: 'cg.Client',
  transport,
  logger: silentLogger,
  routes: { 'cg.Ping': 'cg.Server' },
});
await server.start();
await client.start();
const finished = new Promise((r) => (done = r));
for (let i = 0; i < n; i++) await client.send(Ping, { n: i });
await finished;
for (let i = 0; i < n / 2; i++) await client.request(Ping, { n: i, reply: true }, { expect: Pong });
await client.stop();
await server.stop();
