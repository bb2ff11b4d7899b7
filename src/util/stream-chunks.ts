/**
 * The chunk sizes of the streams that carry a backup (a database file or dump, through gzip,
 * encryption and a hash, into a set file) and a restore (the other way). Node's defaults, 64 KiB
 * file reads and 16 KiB of zlib output, cut a 50 MB SQLite file into thousands of chunks, each a
 * write, a thread-pool round trip and a turn of the event loop; these cut it into tens (gunzip
 * runs about twice as fast, gzip spends about a tenth less CPU).
 *
 * @example
 * await pipeline(createReadStream(file, fileChunks), createGzip(zlibChunks), sink)
 */

/** Bytes read from a file at a time, and what a stream of a backup buffers before it waits. */
export const FILE_CHUNK_BYTES = 1024 * 1024

/** zlib's output buffer, for gzip and gunzip. */
export const ZLIB_CHUNK_BYTES = 256 * 1024

/** Options for `createReadStream` / `createWriteStream` and the PassThrough / Transform stages of a backup. */
export const fileChunks = { highWaterMark: FILE_CHUNK_BYTES } as const

/** Options for `createGzip` / `createGunzip`. */
export const zlibChunks = { chunkSize: ZLIB_CHUNK_BYTES } as const
