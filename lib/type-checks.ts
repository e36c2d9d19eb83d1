// Compile-time checks that what the code keeps by hand (lists of option and handler names,
// the close codes) matches the public declarations in types/index.d.ts: a name added to one
// and not the other fails `tsc`. At run time a check is a call that does nothing.
/** True when A and B hold the same keys; otherwise what each has that the other lacks. */
export type SameKeys<A extends PropertyKey, B extends PropertyKey> =
  [Exclude<A, B>, Exclude<B, A>] extends [never, never] ? true : { onlyInCode: Exclude<A, B>, onlyInTypes: Exclude<B, A> }

/** Compiles only when its type argument is true. */
// eslint-disable-next-line @typescript-eslint/no-unused-vars -- the type argument is the check
export function typesAgree<Check extends true> (): void {}
