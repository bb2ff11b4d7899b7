// The error codes the code decides on, one place for all (as Graphile Worker keeps its
// NX_CODES / CLASH_CODES). A decision reads `error.code` / `error.errno`, never message text.

/** PostgreSQL SQLSTATE codes (https://www.postgresql.org/docs/current/errcodes-appendix.html). */
export const PG = {
  /** unique_violation: an insert or update hit a unique index */
  UNIQUE_VIOLATION: '23505',
  /** invalid_authorization_specification: no such role, or pg_hba.conf refuses it */
  INVALID_AUTHORIZATION: '28000',
  /** invalid_password: the password is wrong */
  INVALID_PASSWORD: '28P01',
  /** insufficient_privilege: the role may not do this */
  INSUFFICIENT_PRIVILEGE: '42501',
  /** undefined_table: the relation does not exist */
  UNDEFINED_TABLE: '42P01',
  /** duplicate_database: CREATE DATABASE of one that exists */
  DUPLICATE_DATABASE: '42P04',
  /** duplicate_object: CREATE ROLE of one that exists */
  DUPLICATE_OBJECT: '42710',
  /** invalid_catalog_name: the database named in the connection does not exist */
  INVALID_CATALOG_NAME: '3D000',
  /** admin_shutdown: the server is stopping (pg_ctl stop, any mode) and ended our session */
  ADMIN_SHUTDOWN: '57P01',
  /** crash_shutdown: another server process crashed and the server is resetting */
  CRASH_SHUTDOWN: '57P02',
  /** cannot_connect_now: the server is starting up or shutting down */
  CANNOT_CONNECT_NOW: '57P03',
  /** dependent_objects_still_exist: DROP ROLE of a role that still owns something */
  DEPENDENT_OBJECTS_STILL_EXIST: '2BP01',
} as const

/** MariaDB / MySQL server error numbers (`errno`; https://mariadb.com/kb/en/mariadb-error-codes/). */
export const MARIADB = {
  /** ER_DB_CREATE_EXISTS: CREATE DATABASE of one that exists */
  DB_CREATE_EXISTS: 1007,
  /** ER_TABLE_EXISTS_ERROR: CREATE TABLE / VIEW, RENAME TABLE onto a table that exists */
  TABLE_EXISTS: 1050,
  /** ER_BAD_TABLE_ERROR: DROP TABLE of a table that is gone */
  BAD_TABLE: 1051,
  /** ER_SERVER_SHUTDOWN: the server is shutting down */
  SERVER_SHUTDOWN: 1053,
  /** ER_BAD_FIELD_ERROR: renaming (CHANGE / RENAME COLUMN) a column already renamed */
  BAD_FIELD: 1054,
  /** ER_DUP_FIELDNAME: ADD COLUMN of a column that exists */
  DUP_FIELDNAME: 1060,
  /** ER_DUP_KEYNAME: CREATE INDEX / ADD INDEX of an index that exists */
  DUP_KEYNAME: 1061,
  /** ER_CANT_DROP_FIELD_OR_KEY: DROP COLUMN / DROP INDEX of one that is gone */
  CANT_DROP_FIELD_OR_KEY: 1091,
  /** ER_NO_SUCH_TABLE: ALTER / RENAME of a table already renamed or dropped */
  NO_SUCH_TABLE: 1146,
  /** ER_CANNOT_USER: CREATE USER of one that exists */
  CANNOT_USER: 1396,
  /** ER_FK_DUP_NAME: ADD CONSTRAINT of a foreign key that exists */
  FK_DUP_NAME: 1826,
  /** ER_CONNECTION_KILLED: the connection was killed (KILL, or a shutdown) */
  CONNECTION_KILLED: 1927,
} as const

/** mysql2's symbolic `code` strings the code decides on. */
export const MARIADB_CODE = {
  /** wrong user or password */
  ACCESS_DENIED: 'ER_ACCESS_DENIED_ERROR',
  /** the user may not use this database */
  DBACCESS_DENIED: 'ER_DBACCESS_DENIED_ERROR',
  /** the user lacks a privilege the statement needs */
  SPECIFIC_ACCESS_DENIED: 'ER_SPECIFIC_ACCESS_DENIED_ERROR',
  /** the server closed the connection (mysql2's own code) */
  PROTOCOL_CONNECTION_LOST: 'PROTOCOL_CONNECTION_LOST',
} as const

/** better-sqlite3 `code` strings (SQLite result codes; extended ones start with their primary's name). */
export const SQLITE = {
  /** the database is locked by another connection */
  BUSY: 'SQLITE_BUSY',
  /** "database or disk is full" */
  FULL: 'SQLITE_FULL',
  /** "file is not a database" (a garbage header) */
  NOTADB: 'SQLITE_NOTADB',
  /** "database disk image is malformed" (SQLITE_CORRUPT_INDEX, … start with it) */
  CORRUPT: 'SQLITE_CORRUPT',
  /** the WAL index (`-shm`) file could not grow: on a full filesystem, the first thing to fail */
  IOERR_SHMSIZE: 'SQLITE_IOERR_SHMSIZE',
  /** any other I/O error (SQLITE_IOERR_WRITE, SQLITE_IOERR_FSYNC, … start with it) */
  IOERR: 'SQLITE_IOERR',
  /** a UNIQUE constraint failed */
  CONSTRAINT_UNIQUE: 'SQLITE_CONSTRAINT_UNIQUE',
  /** a PRIMARY KEY constraint failed */
  CONSTRAINT_PRIMARYKEY: 'SQLITE_CONSTRAINT_PRIMARYKEY',
} as const

/** Node's `errno` codes for the filesystem and sockets. */
export const NODE = {
  /** no space left on the filesystem */
  ENOSPC: 'ENOSPC',
  /** the user's disk quota is used up */
  EDQUOT: 'EDQUOT',
  /** an I/O error from the kernel */
  EIO: 'EIO',
  /** no such file or directory (also: no such Unix socket) */
  ENOENT: 'ENOENT',
  /** a path component is not a directory */
  ENOTDIR: 'ENOTDIR',
  /** the file exists */
  EEXIST: 'EEXIST',
  /** a rename across filesystems (sites_path on another disk than the bench) */
  EXDEV: 'EXDEV',
  /** permission denied (a program that is not executable, a directory that cannot be read) */
  EACCES: 'EACCES',
  /** a directory where a file was wanted */
  EISDIR: 'EISDIR',
  /** a stream ended before its source finished (the other end of a pipeline failed) */
  ERR_STREAM_PREMATURE_CLOSE: 'ERR_STREAM_PREMATURE_CLOSE',
  /** a directory renamed over one that holds files */
  ENOTEMPTY: 'ENOTEMPTY',
  /** nothing listens on that port */
  ECONNREFUSED: 'ECONNREFUSED',
  /** the peer reset the connection */
  ECONNRESET: 'ECONNRESET',
  /** a write to a connection the peer closed */
  EPIPE: 'EPIPE',
  /** zlib: the input is not gzip data (a damaged or foreign dump) */
  Z_DATA_ERROR: 'Z_DATA_ERROR',
  /** zlib: the gzip data ends early */
  Z_BUF_ERROR: 'Z_BUF_ERROR',
} as const

/** The `code` of an error-like value, if it has a string one. */
export function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code
  return typeof code === 'string' ? code : undefined
}

/** The numeric `errno` of an error-like value (mysql2's server errors), if any. */
export function errnoOf(error: unknown): number | undefined {
  const errno = (error as { errno?: unknown } | null | undefined)?.errno
  return typeof errno === 'number' ? errno : undefined
}
