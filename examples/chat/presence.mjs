// Who is online in the chat: the plugin's onPresence option (see ./server.mjs and
// ../cluster/server.mjs) gets each room's joins and leaves of the last presenceInterval, once
// in the whole cluster, and tells them to the room as one `presence` notice. Members are
// named by session id as well as by user name: two tabs of one user are two members, and the
// page merges the welcome's list and the notices by id, so a notice that repeats what it
// knows already changes nothing.

/** A presence entry as the page gets it: the session, and the user name ./chat.mjs set as its info. */
export function memberOf (entry) {
  return { id: entry.sessionId, user: entry.info.user }
}

export function onPresence (room, diff) {
  // app.websocketRooms' broadcastJson() writes JSON.stringify, not the route's
  // schema.outbound: the notice carries the fields the page reads, and nothing else.
  room.broadcastJson({ type: 'presence', joined: diff.joins.map(memberOf), left: diff.leaves.map(memberOf) })
}
