// What ws sent the client when it broke the protocol: ws answers each protocol error (its
// documented error codes, WS_ERR_*, and zlib's for a message that does not inflate) with a
// close frame, then reads nothing more, so the 'close' event that follows says 1006.
import { closeCodes } from '../close-codes'

/** The close code ws sends for each of its documented protocol error codes; 1002 for the rest. */
const PROTOCOL_ERROR_CLOSE_CODES: Readonly<Record<string, number>> = {
  WS_ERR_INVALID_UTF8: closeCodes.INVALID_PAYLOAD,
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: closeCodes.MESSAGE_TOO_BIG,
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: closeCodes.MESSAGE_TOO_BIG,
  WS_ERR_TOO_MANY_BUFFERED_PARTS: closeCodes.POLICY_VIOLATION
}

/** The close code ws sent when it answered a protocol error with a close frame, or 0. */
export function closeCodeSentFor (error: Error): number {
  const code = (error as NodeJS.ErrnoException).code
  if (typeof code !== 'string') return 0
  // A permessage-deflate message that does not inflate: ws sends 1007 on zlib's own error (Z_DATA_ERROR...).
  if (code.startsWith('Z_')) return closeCodes.INVALID_PAYLOAD
  if (!code.startsWith('WS_ERR_')) return 0
  return PROTOCOL_ERROR_CLOSE_CODES[code] ?? closeCodes.PROTOCOL_ERROR
}
