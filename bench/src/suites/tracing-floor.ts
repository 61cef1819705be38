import {
  type Attributes,
  context,
  metrics,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  type TextMapGetter,
  type TextMapSetter,
  trace,
} from '@opentelemetry/api';

type Headers = Record<string, string>;
const setter: TextMapSetter<Headers> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};
const getter: TextMapGetter<Headers> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

/**
 * The registered SDK's own work for one traced one-way message, with no Tidings code: what any
 * library making the same spans and records pays. A `send` span with its attributes and its
 * context injected, a `process` span from the extracted context, entered with `context.with`,
 * and the four histogram records of a message (send duration, time in queue, processing duration,
 * critical time) with a metric attribute set of the same four keys. CPU µs per message.
 */
export function sdkFloorMicros(messages: number, traces: boolean, histograms: boolean): number {
  const tracer = trace.getTracer('tidings-bench-floor');
  const meter = metrics.getMeter('tidings-bench-floor');
  const records = ['send', 'queue', 'process', 'critical'].map((name) =>
    meter.createHistogram(`tidings.bench.floor.${name}`, { unit: 's' }),
  );
  const metricAttributes: Attributes = {
    'messaging.system': 'tidings.in-memory',
    'messaging.operation.name': 'process',
    'messaging.destination.name': 'bench-trace-floor',
    'tidings.message.type': 'bench.Order',
  };
  const handler = () => {};
  const one = (id: number) => {
    if (traces) {
      const parent = context.active();
      const send = tracer.startSpan(
        'send bench-trace-floor',
        {
          kind: SpanKind.PRODUCER,
          attributes: {
            'messaging.system': 'tidings.in-memory',
            'messaging.operation.type': 'send',
            'messaging.operation.name': 'send',
            'messaging.destination.name': 'bench-trace-floor',
            'messaging.message.id': `message-${id}`,
            'messaging.message.conversation_id': `message-${id}`,
            'tidings.message.type': 'bench.Order',
            'tidings.intent': 'send',
          },
        },
        parent,
      );
      const headers: Headers = {};
      propagation.inject(trace.setSpan(parent, send), headers, setter);
      send.end();
      const extracted = propagation.extract(ROOT_CONTEXT, headers, getter);
      const process = tracer.startSpan(
        'process bench-trace-floor',
        {
          kind: SpanKind.CONSUMER,
          attributes: {
            'messaging.system': 'tidings.in-memory',
            'messaging.operation.type': 'process',
            'messaging.operation.name': 'process',
            'messaging.destination.name': 'bench-trace-floor',
            'messaging.message.id': `message-${id}`,
            'messaging.message.conversation_id': `message-${id}`,
            'tidings.message.type': 'bench.Order',
            'tidings.intent': 'send',
            'tidings.attempt': 1,
          },
        },
        extracted,
      );
      context.with(trace.setSpan(extracted, process), handler);
      process.setAttribute('tidings.outcome', 'complete');
      process.end();
    }
    if (histograms) {
      for (const histogram of records) histogram.record(0.001, metricAttributes);
    }
  };
  for (let i = 0; i < 10_000; i++) one(i);
  const start = process.cpuUsage();
  for (let i = 0; i < messages; i++) one(i);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / messages;
}
