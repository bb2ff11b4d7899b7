/** A URL with its password hidden, for messages. */
export function maskUrl(url: string): string {
  // Up to the last "@" before the path: a password may itself contain "@".
  return url.replace(/(\/\/[^:/@]*):[^/]*@/, '$1:***@')
}
