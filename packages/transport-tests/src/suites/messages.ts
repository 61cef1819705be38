import { defineMessage } from '@tidings/core';

// The messages and return codes the conformance suite sends.
export const Ping = defineMessage<{ n: number; from?: string }>('conformance.Ping');
export const Pong = defineMessage<{ n: number; by?: string; to?: string }>('conformance.Pong');
export const Other = defineMessage<{ n: number }>('conformance.Other');
export const Work = defineMessage<{ n: number }>('conformance.Work');
export const Happened = defineMessage<{ n: number }>('conformance.Happened');
export const Big = defineMessage<{ data: string }>('conformance.Big');
export enum Status {
  Ok = 0,
  Rejected = 1,
}
