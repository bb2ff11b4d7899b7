/** A value `JSON.stringify` writes and `JSON.parse` reads back as it was. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }

/** A value that has no faithful JSON form; `path` says where in it (`result.users[2].hash`). */
export class NotJsonError extends Error {
  readonly path: string

  constructor(path: string, what: string) {
    super(
      `${path} is ${what}, which JSON cannot hold; return plain data (objects, arrays, strings, numbers, booleans, null)`,
    )
    this.name = 'NotJsonError'
    this.path = path
  }
}

/**
 * A copy of `value` as plain JSON data, or a `NotJsonError` naming the first part of it that
 * `JSON.stringify` would drop, change or refuse. Kept as JSON keeps them: `undefined` at the top
 * becomes `null`, an object's `undefined` properties are left out (in an array: `null`), and an
 * object with `toJSON` (a `Date`, a `Buffer`) is what that returns. Changed: a `bigint` becomes its
 * decimal string (as `pg` gives an `int8`), so no digit is lost. Refused: functions, symbols,
 * `NaN` and infinities, cycles, and objects that are not plain (a `Map`, a `Set`, a class
 * instance), which `JSON.stringify` would write as `{}` or a shape of their insides.
 *
 * @example
 * toJsonSafe({ count: 3n, at: new Date(0) }) // { count: '3', at: '1970-01-01T00:00:00.000Z' }
 * toJsonSafe({ f: () => 1 })                 // throws: result.f is a function, which JSON cannot hold; …
 */
export function toJsonSafe(value: unknown, path = 'result'): JsonValue {
  return convert(value, path, [])
}

/** The objects enclosing the one being converted, outermost first, each with its path. */
type Ancestors = readonly (readonly [object, string])[]

function convert(value: unknown, path: string, ancestors: Ancestors): JsonValue {
  switch (typeof value) {
    case 'undefined':
      return null
    case 'boolean':
    case 'string':
      return value
    case 'number':
      if (!Number.isFinite(value)) throw new NotJsonError(path, String(value))
      return value
    case 'bigint':
      return value.toString()
    case 'function':
      return refuse(path, 'a function')
    case 'symbol':
      return refuse(path, 'a symbol')
    case 'object':
      break
  }
  if (value === null) return null
  const object = value as object
  const enclosing = ancestors.find(([a]) => a === object)
  if (enclosing) throw new NotJsonError(path, `a reference back to ${enclosing[1]} (a cycle)`)
  const inside: Ancestors = [...ancestors, [object, path]]
  const toJSON = (object as { toJSON?: unknown }).toJSON
  if (typeof toJSON === 'function') return convert(toJSON.call(object, ''), path, inside)
  if (Array.isArray(object)) return object.map((item, i) => convert(item, `${path}[${i}]`, inside))
  const proto = Object.getPrototypeOf(object)
  if (proto !== Object.prototype && proto !== null) return refuse(path, `${describeInstance(object)}`)
  const copy: { [key: string]: JsonValue } = {}
  for (const [key, item] of Object.entries(object)) {
    if (item === undefined) continue
    copy[key] = convert(
      item,
      `${path}${/^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`}`,
      inside,
    )
  }
  return copy
}

function refuse(path: string, what: string): never {
  throw new NotJsonError(path, what)
}

/** `a Map`, `a Promise (await it)`, `an instance of Invoice`. */
function describeInstance(object: object): string {
  if (object instanceof Promise) return 'a Promise (await it before returning)'
  const name = (object as { constructor?: { name?: unknown } }).constructor?.name
  if (typeof name !== 'string' || name === '') return 'an object with a prototype'
  return ['Map', 'Set', 'WeakMap', 'WeakSet', 'RegExp', 'Error'].includes(name) ? `a ${name}` : `an instance of ${name}`
}
