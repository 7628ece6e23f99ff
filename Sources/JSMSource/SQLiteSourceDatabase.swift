import Foundation
import Logging
import NIOCore
import SQLiteNIO

/// A Jira database in an SQLite file (the embedded default for demos and tests).
///
/// SQLite runs each statement to completion on a thread, calling back for every row. To stream
/// with flat memory, each statement gets its own connection and runs on a thread pool owned by
/// this source; its rows are handed over in chunks through a two-chunk buffer, and the statement's
/// thread waits while the reader is behind. Open it with ``open(path:logger:)`` and ``close()`` it.
public final class SQLiteSourceDatabase: StreamingSQLDatabase {
    /// The database file.
    public let path: String
    /// Where statement failures are logged.
    public let logger: Logger
    /// Threads that run statements; a waiting stream holds one, so several streams and queries
    /// can be open at once without stalling each other or Swift's cooperative pool.
    let threadPool: NIOThreadPool
    /// Rows handed over per chunk.
    let chunkSize = 512
    /// Statements still running, which ``close()`` waits for.
    let running = RunningStatements()
    /// How much of the file each connection maps into memory (SQLite's `mmap_size`), in MiB; 0
    /// reads every page through a system call and SQLite's small page cache.
    let mapMiB: Int

    /// Always SQLite.
    public var dialect: SQLDialect { .sqlite }
    /// SQLite has one schema per file.
    public var schema: String? { nil }

    private init(path: String, logger: Logger, threadPool: NIOThreadPool, mapMiB: Int) {
        self.path = path
        self.logger = logger
        self.threadPool = threadPool
        self.mapMiB = mapMiB
    }

    /// Opens a source over the SQLite file at `path` (it is created if missing, which the schema
    /// check then reports as missing tables).
    ///
    /// - Parameters:
    ///   - threads: how many statements can run at once.
    ///   - mapMiB: how much of the file to map into memory, for a process that reads all of it:
    ///     the identities' pass looks rows up all over the file, and with SQLite's 2 MiB cache
    ///     each lookup was a `pread` copy (a quarter of the source thread). The mapped pages are
    ///     the operating system's file cache, shared and reclaimable, but they count in the
    ///     process's RSS; 0 (the default) keeps a worker's memory flat.
    public static func open(
        path: String, threads: Int = 4, mapMiB: Int = 0, logger: Logger = Logger(label: "jsm.source.sqlite")
    ) async throws -> SQLiteSourceDatabase {
        let pool = NIOThreadPool(numberOfThreads: max(1, threads))
        pool.start()
        let database = SQLiteSourceDatabase(path: path, logger: logger, threadPool: pool, mapMiB: max(0, mapMiB))
        // Fail now, not on the first read, when the file cannot be opened.
        let connection = try await database.connect()
        try await connection.closeEvenIfCancelled()
        return database
    }

    /// Waits for running statements (a stream abandoned by its reader finishes skipping its rows),
    /// then stops the statement threads.
    public func close() async throws {
        await running.waitUntilIdle()
        try await threadPool.shutdownGracefully()
    }

    /// `"name"`: SQLite has no schemas to qualify with.
    public func table(_ name: String) -> String { Self.quote(name) }

    /// Opens a connection of this source's own, for statements and for the fixture writer.
    public func connect() async throws -> SQLiteConnection {
        let connection = try await SQLiteConnection.open(
            storage: .file(path: path), threadPool: threadPool, logger: logger,
            on: MultiThreadedEventLoopGroup.singleton.any())
        if mapMiB > 0 {
            do {
                _ = try await connection.query("PRAGMA mmap_size = \(mapMiB * 1024 * 1024)")
            } catch {
                try? await connection.closeEvenIfCancelled()
                throw error
            }
        }
        return connection
    }

    /// Streams the rows of a statement on a connection of its own.
    public func rows(_ statement: SQLStatement) -> SQLRowStream {
        SQLRowStream { [self] in
            let connection = try await connect()
            let pipe = RowPipe()
            let chunkSize = chunkSize
            let binds = statement.binds.map(Self.data)
            let running = running
            running.begin()
            // The statement runs on the pool thread while the reader consumes; this task ends when
            // the statement does, which a reader that stops early speeds up by cancelling the pipe.
            Task {
                let chunk = ChunkBuilder(pipe: pipe, chunkSize: chunkSize)
                var failure: (any Error)?
                do {
                    try await connection.query(statement.sql, binds) { row in chunk.add(row) }
                    chunk.flush()
                } catch {
                    failure = error
                }
                // Closed before the reader hears the end, so a source closed right after a read
                // never outlives one of its connections.
                try? await connection.closeEvenIfCancelled()
                pipe.finish(failure)
                running.end()
            }
            return SQLiteChunkSource(pipe: pipe)
        }
    }

    /// Runs a statement that returns no rows on a fresh connection.
    public func execute(_ sql: String) async throws {
        let connection = try await connect()
        do {
            _ = try await connection.query(sql, [])
        } catch {
            try? await connection.closeEvenIfCancelled()
            throw error
        }
        try await connection.closeEvenIfCancelled()
    }

    /// The SQLite value of a neutral one.
    static func data(_ value: SQLValue) -> SQLiteData {
        switch value {
        case .null: return .null
        case .integer(let integer): return .integer(Int(integer))
        case .text(let text): return .text(text)
        case .real(let real): return .float(real)
        }
    }

    /// The neutral value of an SQLite one; blobs (absent from Jira's subset) become NULL.
    static func value(_ data: SQLiteData) -> SQLValue {
        switch data {
        case .null, .blob: return .null
        case .integer(let integer): return .integer(Int64(integer))
        case .text(let text): return .text(text)
        case .float(let real): return .real(real)
        }
    }
}

/// Counts the statements still running so that closing the source can wait for them.
final class RunningStatements: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var count = 0
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []

    func begin() {
        lock.lock()
        count += 1
        lock.unlock()
    }

    func end() {
        lock.lock()
        count -= 1
        let waiters = count == 0 ? idleWaiters : []
        if count == 0 { idleWaiters = [] }
        lock.unlock()
        for waiter in waiters { waiter.resume() }
    }

    func waitUntilIdle() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            lock.lock()
            if count == 0 {
                lock.unlock()
                continuation.resume()
            } else {
                idleWaiters.append(continuation)
                lock.unlock()
            }
        }
    }
}

/// Collects rows on the statement's thread and hands them to the pipe a chunk at a time.
///
/// Only the statement's thread touches it (SQLite calls back on it row after row), hence unchecked.
final class ChunkBuilder: @unchecked Sendable {
    let pipe: RowPipe
    let chunkSize: Int
    var chunk: [SQLRecord] = []
    var stopped = false

    init(pipe: RowPipe, chunkSize: Int) {
        self.pipe = pipe
        self.chunkSize = chunkSize
        chunk.reserveCapacity(chunkSize)
    }

    func add(_ row: SQLiteRow) {
        guard !stopped else { return }
        chunk.append(SQLRecord(row.columns.map { SQLiteSourceDatabase.value($0.data) }))
        if chunk.count >= chunkSize { flush() }
    }

    func flush() {
        guard !stopped, !chunk.isEmpty else { return }
        let full = chunk
        chunk = []
        chunk.reserveCapacity(chunkSize)
        if !pipe.send(full) { stopped = true }
    }
}

/// The reader's side of an SQLite statement; dropping it cancels the statement's pipe.
final class SQLiteChunkSource: SQLChunkSource {
    let pipe: RowPipe

    init(pipe: RowPipe) { self.pipe = pipe }

    deinit { pipe.cancel() }

    func nextChunk() async throws -> [SQLRecord]? { try await pipe.receive() }
}

/// A two-chunk buffer between a statement running on a blocking thread and an async reader.
///
/// The statement's thread waits (on a condition, never on Swift's cooperative pool) while two
/// chunks are waiting to be read, which bounds memory whatever the table size.
final class RowPipe: @unchecked Sendable {
    /// Chunks buffered ahead of the reader.
    static let capacity = 2

    // Every field below is guarded by `condition`.
    private let condition = NSCondition()
    private var chunks: [[SQLRecord]] = []
    private var waiting: CheckedContinuation<[SQLRecord]?, any Error>?
    private var ended = false
    private var failure: (any Error)?
    private var cancelled = false

    /// Called on the statement's thread: hands over a chunk, waiting while the buffer is full.
    ///
    /// - Returns: `false` once the reader has gone; the statement should stop producing.
    func send(_ chunk: [SQLRecord]) -> Bool {
        condition.lock()
        // Bounded by the reader: each receive or cancel signals, and the buffer holds two chunks.
        while !cancelled, waiting == nil, chunks.count >= Self.capacity { condition.wait() }
        if cancelled {
            condition.unlock()
            return false
        }
        if let reader = waiting {
            waiting = nil
            condition.unlock()
            reader.resume(returning: chunk)
            return true
        }
        chunks.append(chunk)
        condition.unlock()
        return true
    }

    /// Called once when the statement ends, with its error if it failed.
    func finish(_ error: (any Error)?) {
        condition.lock()
        ended = true
        failure = error
        let reader = waiting
        waiting = nil
        condition.unlock()
        if let reader {
            if let error { reader.resume(throwing: error) } else { reader.resume(returning: nil) }
        }
    }

    /// The next chunk; `nil` at the end; the statement's error once it has been read up to it.
    func receive() async throws -> [SQLRecord]? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[SQLRecord]?, any Error>) in
                condition.lock()
                if !chunks.isEmpty {
                    let chunk = chunks.removeFirst()
                    condition.signal()
                    condition.unlock()
                    continuation.resume(returning: chunk)
                } else if cancelled {
                    condition.unlock()
                    continuation.resume(throwing: CancellationError())
                } else if ended {
                    let error = failure
                    failure = nil
                    condition.unlock()
                    if let error { continuation.resume(throwing: error) } else { continuation.resume(returning: nil) }
                } else {
                    waiting = continuation
                    condition.unlock()
                }
            }
        } onCancel: {
            cancel()
        }
    }

    /// The reader has gone (or its task was cancelled): release the statement's thread.
    func cancel() {
        condition.lock()
        cancelled = true
        chunks = []
        let reader = waiting
        waiting = nil
        condition.broadcast()
        condition.unlock()
        reader?.resume(throwing: CancellationError())
    }
}

extension SQLiteConnection {
    /// Closes the connection even when the calling task is cancelled, as an interrupted dry run's
    /// is. The async `close()` runs through `NIOThreadPool.runIfActive`, which drops the work of a
    /// cancelled task with a `CancellationError`; the connection then stays open and traps in its
    /// deinit. The future-based close does not look at the task.
    public func closeEvenIfCancelled() async throws {
        let closed: EventLoopFuture<Void> = close()
        try await closed.get()
    }
}
