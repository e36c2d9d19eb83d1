// Resume tokens: 144 random bits as 24 characters of base64url, opaque to the client. What a
// handshake brings is checked for that shape before any look-up, so a long or odd string
// costs nothing and reaches no store.
import { randomBytes } from 'node:crypto'

/** Characters of a token: 18 random bytes in base64url, no padding. */
export const TOKEN_LENGTH = 24
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{24}$/

export function newToken (): string {
  return randomBytes(18).toString('base64url')
}

/** True for a string that could be a token this plugin issued. */
export function isTokenShaped (value: unknown): value is string {
  return typeof value === 'string' && value.length === TOKEN_LENGTH && TOKEN_SHAPE.test(value)
}
