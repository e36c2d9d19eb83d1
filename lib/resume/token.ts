// Resume tokens: 144 random bits as 24 characters of base64url, opaque to the client. Across
// servers (a store that shares sessions between them) the issuing server's node id, 12
// characters, goes first: a server finds the token's server without asking Redis. What a
// handshake brings is checked for that shape before any look-up, so a long or odd string
// costs nothing and reaches no store.
import { randomBytes } from 'node:crypto'

/** Characters of a token's random part: 18 random bytes in base64url, no padding. */
export const TOKEN_LENGTH = 24
/** Characters of a node id (9 random bytes in base64url), when the token carries one. */
export const NODE_ID_LENGTH = 12
const TOKEN_SHAPE = /^(?:[A-Za-z0-9_-]{12})?[A-Za-z0-9_-]{24}$/

/** A new token, naming `nodeId` (a 12-character node id) when given. */
export function newToken (nodeId: string | null = null): string {
  const random = randomBytes(18).toString('base64url')
  return nodeId === null ? random : nodeId + random
}

/** True for a string that could be a token this plugin issued. */
export function isTokenShaped (value: unknown): value is string {
  return typeof value === 'string' && (value.length === TOKEN_LENGTH || value.length === TOKEN_LENGTH + NODE_ID_LENGTH) && TOKEN_SHAPE.test(value)
}

/** The node id a token names, or null for a token that names none. */
export function nodeOfToken (token: string): string | null {
  return token.length === TOKEN_LENGTH ? null : token.slice(0, NODE_ID_LENGTH)
}
