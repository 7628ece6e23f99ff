import Logging
import VaporCSQLite

/// Where and how the ledger opens its SQLite file (the embedded default on one host).
public struct SQLiteLedgerConfiguration: Sendable, Hashable {
    /// The database file; created when missing.
    public var path: String
    /// How long a write waits for another process holding the file before the operation fails
    /// with a retriable ``LedgerError``.
    public var busyTimeout: Duration
    /// SQLite's page cache for this connection, in MiB. SQLite's own default (2 MiB) makes the
    /// producer's claims and the cut read most index pages back from the operating system once a
    /// scope reaches a million identities (measured in sqlite3: one INSERT of 1,000,000 scope rows
    /// took 7.9 s with 2 MiB, 5.3 s with 256 MiB); a worker, whose memory must stay flat, keeps a
    /// small one.
    public var pageCacheMiB: Int

    /// The page cache of the processes that claim and cut whole scopes (producer, aggregator).
    public static let largePageCacheMiB = 64
    /// SQLite's default page cache, for processes that only touch one batch at a time (workers).
    public static let smallPageCacheMiB = 2

    /// Creates a configuration for the file at `path`.
    public init(
        path: String, busyTimeout: Duration = .seconds(5),
        pageCacheMiB: Int = SQLiteLedgerConfiguration.largePageCacheMiB
    ) {
        self.path = path
        self.busyTimeout = busyTimeout
        self.pageCacheMiB = pageCacheMiB
    }
}

/// The ledger on one SQLite connection: WAL journal, foreign keys on, a busy timeout for other
/// processes, and one transaction at a time within this process (SQLite has one writer anyway).
final class SQLiteLedgerDatabase: LedgerDatabase {
    let dialect = SQLDialect.sqlite
    private let connection: SQLiteHandle
    private let gate = TransactionGate()

    private init(connection: SQLiteHandle) {
        self.connection = connection
    }

    static func open(_ configuration: SQLiteLedgerConfiguration, logger: Logger) async throws(LedgerError)
        -> SQLiteLedgerDatabase
    {
        let connection: SQLiteHandle
        do {
            connection = try await SQLiteHandle.open(path: configuration.path)
        } catch {
            throw Self.classify(error, operation: "open")
        }
        do {
            // A bounded wait for another process holding the file, then a retriable failure.
            _ = try await connection.query(
                "PRAGMA busy_timeout = \(max(0, configuration.busyTimeout.wholeMilliseconds))", [])
            _ = try await connection.query("PRAGMA journal_mode = WAL", [])
            _ = try await connection.query("PRAGMA synchronous = NORMAL", [])
            _ = try await connection.query("PRAGMA foreign_keys = ON", [])
            // A checkpoint (copying the WAL into the file) fsyncs; at SQLite's default of one every
            // 1,000 pages, claiming 1,000,000 identities made about 600 fsyncs (strace), each a
            // wait of ~12 ms on this machine's disk. 10,000 pages (40 MiB of WAL) make a tenth.
            _ = try await connection.query("PRAGMA wal_autocheckpoint = 10000", [])
            // Negative: a size in KiB rather than in pages.
            _ = try await connection.query("PRAGMA cache_size = -\(max(1, configuration.pageCacheMiB) * 1024)", [])
        } catch {
            await connection.close()
            throw Self.classify(error, operation: "open")
        }
        logger.debug(
            "SQLite ledger open",
            metadata: [
                "ledger.path": "\(configuration.path)", "ledger.page_cache_mib": "\(configuration.pageCacheMiB)",
                "ledger.busy_timeout": "\(configuration.busyTimeout)",
            ])
        return SQLiteLedgerDatabase(connection: connection)
    }

    func close() async {
        await gate.acquire()
        await connection.close()
        await gate.release()
    }

    func transaction<T: Sendable>(
        _ operation: String, readOnly: Bool, _ body: @escaping @Sendable (any LedgerSession) async throws -> T
    ) async throws(LedgerError) -> T {
        await gate.acquire()
        do {
            let result = try await run(operation, readOnly: readOnly, body)
            await gate.release()
            return result
        } catch {
            await gate.release()
            throw error
        }
    }

    private func run<T: Sendable>(
        _ operation: String, readOnly: Bool, _ body: @escaping @Sendable (any LedgerSession) async throws -> T
    ) async throws(LedgerError) -> T {
        let session = SQLiteSession(connection: connection)
        do {
            // IMMEDIATE takes the write lock up front, so two processes never deadlock upgrading.
            _ = try await connection.query(readOnly ? "BEGIN DEFERRED" : "BEGIN IMMEDIATE", [])
        } catch {
            throw Self.classify(error, operation: operation)
        }
        do {
            let result = try await body(session)
            _ = try await connection.query("COMMIT", [])
            return result
        } catch {
            // In its own task, so that a cancelled caller still ends the transaction; otherwise the
            // connection would stay inside it and every later BEGIN would fail.
            let connection = self.connection
            _ = try? await Task { try await connection.query("ROLLBACK", []) }.value
            throw Self.classify(error, operation: operation)
        }
    }

    static func classify(_ error: any Error, operation: String) -> LedgerError {
        if let error = error as? LedgerError { return error }
        guard let error = error as? SQLiteFailure else {
            return LedgerError(.database, operation: operation, "\(type(of: error)): \(error)")
        }
        switch error.primaryCode {
        case SQLITE_BUSY, SQLITE_LOCKED:
            return LedgerError(.transactionConflict, operation: operation, "the SQLite file is busy: \(error.message)")
        case SQLITE_CONSTRAINT:
            return LedgerError(.constraintViolation, operation: operation, error.message)
        case SQLITE_CANTOPEN, SQLITE_IOERR, SQLITE_FULL, SQLITE_READONLY:
            return LedgerError(.unavailable, operation: operation, "SQLite \(error.code): \(error.message)")
        default:
            return LedgerError(.database, operation: operation, "SQLite \(error.code): \(error.message)")
        }
    }
}

/// The statements of one SQLite transaction.
private struct SQLiteSession: LedgerSession {
    let connection: SQLiteHandle
    var dialect: SQLDialect { .sqlite }

    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        try await connection.query(sql, binds)
    }

    func execute(_ sql: String, _ binds: [SQLValue]) async throws {
        _ = try await connection.query(sql, binds)
    }

    func queryEach(_ statements: [BoundStatement], leading: [SQLValue]) async throws -> [[SQLRow]] {
        try await connection.queryEach(statements, leading: leading)
    }
}

/// A first-come, first-served lock for async code: SQLite transactions on one connection must
/// not interleave, and an actor alone would let them interleave at every `await`.
actor TransactionGate {
    private var held = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        guard held else {
            held = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty {
            held = false
        } else {
            waiters.removeFirst().resume()
        }
    }
}
