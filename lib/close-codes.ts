// The close codes this plugin sends (RFC 6455 7.4.1, plus 1012/1013 from the IANA registry),
// and the check applied to codes and reasons given to session.close().
import type { closeCodes as PublicCloseCodes } from '../types/index'
import { CloseReasonTooLongError, InvalidArgumentError, InvalidCloseCodeError, describe } from './errors'
import { typesAgree, type SameKeys } from './type-checks'

export const closeCodes = Object.freeze({
  /** session.close() without a code; a clean end. */
  NORMAL: 1000,
  /** The server is shutting down (app.close()). */
  GOING_AWAY: 1001,
  /** The peer broke the protocol (sent by ws). */
  PROTOCOL_ERROR: 1002,
  /** A text or binary message arrived on a route with no handler for that kind. */
  UNSUPPORTED_DATA: 1003,
  /** A text message was not valid UTF-8 (sent by ws). */
  INVALID_PAYLOAD: 1007,
  /** The message broke a policy of the application. */
  POLICY_VIOLATION: 1008,
  /** A message was larger than maxPayload (sent by ws). */
  MESSAGE_TOO_BIG: 1009,
  /** A handler threw or rejected and no onError handler took over. */
  INTERNAL_ERROR: 1011,
  /** The server is restarting. */
  SERVICE_RESTART: 1012,
  /** The server is overloaded; try again later. */
  TRY_AGAIN_LATER: 1013
} as const) satisfies typeof PublicCloseCodes
typesAgree<SameKeys<keyof typeof closeCodes, keyof typeof PublicCloseCodes>>()

const MAX_REASON_BYTES = 123

function isSendableCode (code: number): boolean {
  return Number.isInteger(code) &&
    ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
      (code >= 3000 && code <= 4999))
}

/** Throws a RangeError with a code when session.close(code, reason) could not be sent as given. */
export function assertCloseArguments (code: unknown, reason: unknown): asserts code is number {
  if (typeof code !== 'number' || !isSendableCode(code)) throw new InvalidCloseCodeError(describe(code))
  if (typeof reason !== 'string') throw new InvalidArgumentError('close reason', 'a string', describe(reason))
  const bytes = Buffer.byteLength(reason)
  if (bytes > MAX_REASON_BYTES) throw new CloseReasonTooLongError(bytes)
}
