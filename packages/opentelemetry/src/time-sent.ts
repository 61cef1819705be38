import { Headers } from '@tidings/core';

// Senders format one time per millisecond; so parse one per millisecond.
let lastText = '';
let lastTime: number | undefined;

/** Milliseconds since the epoch of a message's `tidings.time-sent`; undefined when unreadable. */
export function timeSent(headers: Readonly<Record<string, string>>): number | undefined {
  const text = headers[Headers.TimeSent];
  if (text === undefined) return undefined;
  if (text !== lastText) {
    const time = Date.parse(text);
    lastText = text;
    lastTime = Number.isNaN(time) ? undefined : time;
  }
  return lastTime;
}
