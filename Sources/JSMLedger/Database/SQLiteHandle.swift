import CSQLiteLedger
import Dispatch
// The SQLite that sqlite-nio builds (its C target, with `sqlite_nio_`-prefixed symbols): the
// ledger drives it directly so that it can keep its prepared statements, which sqlite-nio does not.
import VaporCSQLite

/// A failure SQLite reported: its extended result code and message.
struct SQLiteFailure: Error, CustomStringConvertible {
    let code: Int32
    let message: String

    /// SQLite's primary result code (the low byte of the extended one).
    var primaryCode: Int32 { code & 0xFF }
    var description: String { "SQLite error \(code): \(message)" }
}

/// One SQLite connection confined to one serial queue, with a cache of prepared statements.
///
/// The ledger runs the same statements over and over (a claim of 5,000 identities is ten
/// statements of 500 rows each, a worker completes every batch with the same few); compiling them
/// anew each time (sqlite-nio prepares every statement and finalizes it after one run) was about a
/// quarter of the ledger thread's CPU during claims (perf, 1,000,000 identities), and binding each
/// text through a C-string copy another tenth. Here a statement is prepared once, kept (least
/// recently used out beyond ``cacheBudgetBytes``), reset and rebound; the connection runs with
/// SQLite's query planner stability guarantee, without which binding any parameter past the 31st
/// marked a statement to be compiled again.
final class SQLiteHandle: @unchecked Sendable {
    // Every member below is touched only on `queue`.
    private let queue: DispatchQueue
    private var database: OpaquePointer?
    private var statements: [String: CachedStatement] = [:]
    private var useCounter: UInt64 = 0

    /// Program memory the kept statements may hold together; the least recently used go first
    /// beyond it. A 500-row VALUES statement holds about 700 KiB of program (sqlite3_stmt_status),
    /// so the claims and a worker's batch completion stay cached while memory stays flat.
    static let cacheBudgetBytes = 8 << 20

    private var cachedBytes = 0

    private struct CachedStatement {
        let pointer: OpaquePointer
        let bytes: Int
        var lastUse: UInt64
    }

    private init(database: OpaquePointer, queue: DispatchQueue) {
        self.database = database
        self.queue = queue
    }

    /// Opens (creating when missing) the database file at `path`.
    static func open(path: String) async throws -> SQLiteHandle {
        let queue = DispatchQueue(label: "jsm.ledger.sqlite")
        return try await run(on: queue) {
            var database: OpaquePointer?
            let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
            let code = sqlite_nio_sqlite3_open_v2(path, &database, flags, nil)
            guard code == SQLITE_OK, let database else {
                let message = database.map { String(cString: sqlite_nio_sqlite3_errmsg($0)) } ?? "out of memory"
                sqlite_nio_sqlite3_close_v2(database)
                throw SQLiteFailure(code: code, message: message)
            }
            sqlite_nio_sqlite3_extended_result_codes(database, 1)
            let stable = jsm_sqlite_enable_qpsg(UnsafeMutableRawPointer(database))
            guard stable == SQLITE_OK else {
                sqlite_nio_sqlite3_close_v2(database)
                throw SQLiteFailure(code: stable, message: "cannot turn on the query planner stability guarantee")
            }
            return SQLiteHandle(database: database, queue: queue)
        }
    }

    /// Runs `sql` (written with `$N` parameters, see ``SQLDialect/statement(_:)``) with `binds` and
    /// returns its rows.
    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        try await Self.run(on: queue) { try self.runStatement(sql, leading: [], binds) }
    }

    /// Runs the statements one after the other in one turn of the connection's queue, each with
    /// `leading` then its own values bound, and returns each one's rows; stops at the first failure.
    func queryEach(_ statements: [BoundStatement], leading: [SQLValue]) async throws -> [[SQLRow]] {
        try await Self.run(on: queue) {
            try statements.map { try self.runStatement($0.sql, leading: leading, $0.binds) }
        }
    }

    /// How many prepared statements are kept and how much program memory they hold.
    var cacheUse: (statements: Int, bytes: Int) {
        get async { (try? await Self.run(on: queue) { (self.statements.count, self.cachedBytes) }) ?? (0, 0) }
    }

    /// Finalizes the cached statements and closes the connection.
    func close() async {
        _ = try? await Self.run(on: queue) {
            for statement in self.statements.values { sqlite_nio_sqlite3_finalize(statement.pointer) }
            self.statements.removeAll()
            self.cachedBytes = 0
            sqlite_nio_sqlite3_close_v2(self.database)
            self.database = nil
        }
    }

    private static func run<T>(on queue: DispatchQueue, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }

    // MARK: - On the queue

    private func runStatement(_ sql: String, leading: [SQLValue], _ binds: [SQLValue]) throws -> [SQLRow] {
        guard let database else { throw SQLiteFailure(code: SQLITE_MISUSE, message: "the connection is closed") }
        let statement = try prepared(sql, database)
        defer {
            sqlite_nio_sqlite3_reset(statement)
            sqlite_nio_sqlite3_clear_bindings(statement)
        }
        for (index, value) in leading.enumerated() {
            let code = Self.bind(value, at: Int32(index + 1), statement)
            guard code == SQLITE_OK else { throw failure(code, database) }
        }
        for (index, value) in binds.enumerated() {
            let code = Self.bind(value, at: Int32(leading.count + index + 1), statement)
            guard code == SQLITE_OK else { throw failure(code, database) }
        }
        var rows: [SQLRow] = []
        let width = sqlite_nio_sqlite3_column_count(statement)
        while true {
            let code = sqlite_nio_sqlite3_step(statement)
            if code == SQLITE_DONE { return rows }
            guard code == SQLITE_ROW else { throw failure(code, database) }
            var values: [SQLValue] = []
            values.reserveCapacity(Int(width))
            for column in 0..<width { values.append(Self.value(at: column, statement)) }
            rows.append(SQLRow(values: values))
        }
    }

    private func prepared(_ sql: String, _ database: OpaquePointer) throws -> OpaquePointer {
        useCounter += 1
        // One hash of the text (tens of KiB for a 500-row statement) per run.
        if let index = statements.index(forKey: sql) {
            statements.values[index].lastUse = useCounter
            return statements.values[index].pointer
        }
        var statement: OpaquePointer?
        var text = SQLDialect.sqlite.statement(sql)
        let code = text.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                sqlite_nio_sqlite3_prepare_v3(
                    database, chars.baseAddress, Int32(chars.count), UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
            }
        }
        guard code == SQLITE_OK, let statement else { throw failure(code, database) }
        let bytes = Int(sqlite_nio_sqlite3_stmt_status(statement, SQLITE_STMTSTATUS_MEMUSED, 0))
        while cachedBytes + bytes > Self.cacheBudgetBytes,
            let oldest = statements.min(by: { $0.value.lastUse < $1.value.lastUse })
        {
            sqlite_nio_sqlite3_finalize(oldest.value.pointer)
            cachedBytes -= oldest.value.bytes
            statements[oldest.key] = nil
        }
        statements[sql] = CachedStatement(pointer: statement, bytes: bytes, lastUse: useCounter)
        cachedBytes += bytes
        return statement
    }

    private func failure(_ code: Int32, _ database: OpaquePointer) -> SQLiteFailure {
        SQLiteFailure(
            code: sqlite_nio_sqlite3_extended_errcode(database),
            message: String(cString: sqlite_nio_sqlite3_errmsg(database)))
    }

    private static func bind(_ value: SQLValue, at index: Int32, _ statement: OpaquePointer) -> Int32 {
        switch value {
        case .int(let value):
            return sqlite_nio_sqlite3_bind_int64(statement, index, value)
        case .text(var value):
            return value.withUTF8 { bytes in
                // An empty buffer may have no address, which SQLite would bind as NULL.
                guard let base = bytes.baseAddress else {
                    return sqlite_nio_sqlite3_bind_text64(statement, index, "", 0, transient, UInt8(SQLITE_UTF8))
                }
                return base.withMemoryRebound(to: CChar.self, capacity: bytes.count) { chars in
                    sqlite_nio_sqlite3_bind_text64(
                        statement, index, chars, UInt64(bytes.count), transient, UInt8(SQLITE_UTF8))
                }
            }
        case .bytes(let value):
            return value.withUnsafeBytes { bytes in
                guard let base = bytes.baseAddress else { return sqlite_nio_sqlite3_bind_zeroblob(statement, index, 0) }
                return sqlite_nio_sqlite3_bind_blob64(statement, index, base, UInt64(bytes.count), transient)
            }
        case .null:
            return sqlite_nio_sqlite3_bind_null(statement, index)
        case .intArray, .textArray, .boolArray:
            preconditionFailure("array parameters are for PostgreSQL; SQLite statements use VALUES lists")
        }
    }

    private static func value(at column: Int32, _ statement: OpaquePointer) -> SQLValue {
        switch sqlite_nio_sqlite3_column_type(statement, column) {
        case SQLITE_INTEGER:
            return .int(sqlite_nio_sqlite3_column_int64(statement, column))
        case SQLITE_FLOAT:
            return .int(Int64(sqlite_nio_sqlite3_column_double(statement, column)))
        case SQLITE_TEXT:
            guard let text = sqlite_nio_sqlite3_column_text(statement, column) else { return .text("") }
            let count = Int(sqlite_nio_sqlite3_column_bytes(statement, column))
            return .text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            let count = Int(sqlite_nio_sqlite3_column_bytes(statement, column))
            guard count > 0, let blob = sqlite_nio_sqlite3_column_blob(statement, column) else { return .bytes([]) }
            return .bytes(Array(UnsafeRawBufferPointer(start: blob, count: count)))
        default:
            return .null
        }
    }
}

/// SQLite copies a value bound with this destructor before the bind returns.
private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
