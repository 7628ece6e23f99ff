import JSMSource
import Logging
import PostgresNIO
import SQLiteNIO

/// Where a fixture's rows go: creates the Jira tables, takes rows in batches, then indexes them.
public protocol JiraFixtureWriter {
    /// Drops and recreates every table of ``JiraTables/all``.
    func createTables() async throws
    /// Appends rows (values in the table's column order) with one set-based write.
    func insert(_ table: JiraTable, rows: [[SQLValue]]) async throws
    /// Commits what is pending and creates the indexes readers need.
    func finish() async throws
    /// Gives up after a failed write, releasing what the writer holds; the database is left partial.
    func abandon() async
}

extension JiraFixtureWriter {
    /// Runs `body` (create, insert..., finish), abandoning the writer if it throws.
    public func write(_ body: (Self) async throws -> Void) async throws {
        do {
            try await body(self)
        } catch {
            await abandon()
            throw error
        }
    }
}

/// Writes fixtures into an SQLite file: multi-row `INSERT ... VALUES` statements of a few hundred
/// rows inside large transactions, with WAL and `synchronous=OFF` while loading.
public final class SQLiteFixtureWriter: JiraFixtureWriter {
    let database: SQLiteSourceDatabase
    /// Open from ``createTables()`` to ``finish()``.
    var openConnection: SQLiteConnection?
    var rowsInTransaction = 0
    /// Rows per transaction.
    let transactionRows = 100_000

    /// Writes into `database`; the connection opens in ``createTables()`` and closes in ``finish()``.
    public init(database: SQLiteSourceDatabase) {
        self.database = database
    }

    var connection: SQLiteConnection {
        get throws {
            guard let openConnection else {
                throw SourceError(.invalidRequest, "the SQLite fixture writer is used before createTables()")
            }
            return openConnection
        }
    }

    /// Opens the connection, drops and recreates the tables.
    public func createTables() async throws {
        if openConnection == nil {
            let connection = try await database.connect()
            openConnection = connection
            _ = try await connection.query("PRAGMA journal_mode=WAL", [])
            _ = try await connection.query("PRAGMA synchronous=OFF", [])
        }
        let connection = try connection
        for table in JiraTables.all {
            _ = try await connection.query("DROP TABLE IF EXISTS \(quote(table.name))", [])
            _ = try await connection.query(table.createStatement(qualifiedName: quote(table.name)), [])
        }
    }

    /// Inserts rows, at most 32,000 parameters a statement.
    public func insert(_ table: JiraTable, rows: [[SQLValue]]) async throws {
        guard !rows.isEmpty else { return }
        let connection = try connection
        if rowsInTransaction == 0 { _ = try await connection.query("BEGIN", []) }
        let width = table.columns.count
        let perStatement = max(1, min(500, 32_000 / width))
        let columns = table.columns.map { quote($0.name) }.joined(separator: ", ")
        let tuple = "(" + Array(repeating: "?", count: width).joined(separator: ", ") + ")"
        var start = 0
        while start < rows.count {  // bounded: advances by perStatement
            let slice = rows[start..<min(rows.count, start + perStatement)]
            let sql =
                "INSERT INTO \(quote(table.name)) (\(columns)) VALUES "
                + Array(repeating: tuple, count: slice.count).joined(separator: ", ")
            var binds: [SQLiteData] = []
            binds.reserveCapacity(slice.count * width)
            for row in slice {
                precondition(row.count == width, "a \(table.name) row needs \(width) values")
                for value in row { binds.append(Self.data(value)) }
            }
            _ = try await connection.query(sql, binds)
            start += perStatement
        }
        rowsInTransaction += rows.count
        if rowsInTransaction >= transactionRows {
            _ = try await connection.query("COMMIT", [])
            rowsInTransaction = 0
        }
    }

    /// Commits, indexes, restores durable writes and closes the connection.
    public func finish() async throws {
        let connection = try connection
        if rowsInTransaction > 0 {
            _ = try await connection.query("COMMIT", [])
            rowsInTransaction = 0
        }
        for table in JiraTables.all {
            for statement in table.indexStatements(qualifiedName: quote(table.name), indexPrefix: "") {
                _ = try await connection.query(statement, [])
            }
        }
        _ = try await connection.query("PRAGMA synchronous=NORMAL", [])
        _ = try await connection.query("ANALYZE", [])
        openConnection = nil
        try await connection.closeEvenIfCancelled()
    }

    /// Closes the connection without committing.
    public func abandon() async {
        guard let connection = openConnection else { return }
        openConnection = nil
        try? await connection.closeEvenIfCancelled()
    }

    static func data(_ value: SQLValue) -> SQLiteData {
        switch value {
        case .null: return .null
        case .integer(let integer): return .integer(Int(integer))
        case .text(let text): return .text(text)
        case .real(let real): return .float(real)
        }
    }
}

/// Writes fixtures into a PostgreSQL schema of their own with `COPY ... FROM STDIN`, a batch of
/// rows per copy, the bulk path PostgreSQL is fastest at.
public final class PostgresFixtureWriter: JiraFixtureWriter {
    let client: PostgresClient
    /// The schema the tables go in; created if missing.
    public let schema: String
    let logger: Logger

    /// Writes into `schema` through a running `client`.
    public init(client: PostgresClient, schema: String, logger: Logger = Logger(label: "jsm.fixtures.postgres")) {
        self.client = client
        self.schema = schema
        self.logger = logger
    }

    func qualified(_ table: JiraTable) -> String { quote(schema) + "." + quote(table.name) }

    /// Creates the schema if needed, drops and recreates the tables.
    public func createTables() async throws {
        try await client.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \(quote(schema))"), logger: logger)
        for table in JiraTables.all {
            try await client.query(PostgresQuery(unsafeSQL: "DROP TABLE IF EXISTS \(qualified(table))"), logger: logger)
            try await client.query(
                PostgresQuery(unsafeSQL: table.createStatement(qualifiedName: qualified(table))), logger: logger)
        }
    }

    /// Copies rows in, as one COPY in text format.
    public func insert(_ table: JiraTable, rows: [[SQLValue]]) async throws {
        guard !rows.isEmpty else { return }
        var buffer = ByteBufferAllocator().buffer(capacity: rows.count * 64)
        for row in rows {
            precondition(row.count == table.columns.count, "a \(table.name) row needs \(table.columns.count) values")
            for (index, value) in row.enumerated() {
                if index > 0 { buffer.writeInteger(UInt8(ascii: "\t")) }
                Self.write(value, into: &buffer)
            }
            buffer.writeInteger(UInt8(ascii: "\n"))
        }
        let schema = schema
        let columns = table.columns.map(\.name)
        try await client.withConnection { connection in
            // postgres-nio quotes COPY's table name as one identifier, so the schema is chosen
            // through search_path, for this transaction only.
            try await connection.query(PostgresQuery(unsafeSQL: "BEGIN"), logger: logger)
            do {
                try await connection.query(
                    PostgresQuery(unsafeSQL: "SET LOCAL search_path TO \(quote(schema))"), logger: logger)
                try await connection.copyFrom(table: table.name, columns: columns, logger: logger) { writer in
                    try await writer.write(buffer)
                }
                try await connection.query(PostgresQuery(unsafeSQL: "COMMIT"), logger: logger)
            } catch {
                _ = try? await connection.query(PostgresQuery(unsafeSQL: "ROLLBACK"), logger: logger)
                throw error
            }
        }
    }

    /// Nothing to release: every write is its own statement.
    public func abandon() async {}

    /// Creates the indexes and refreshes the planner's statistics.
    public func finish() async throws {
        for table in JiraTables.all {
            for statement in table.indexStatements(qualifiedName: qualified(table), indexPrefix: "") {
                try await client.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
            try await client.query(PostgresQuery(unsafeSQL: "ANALYZE \(qualified(table))"), logger: logger)
        }
    }

    /// One value in COPY's text format: `\N` for NULL, backslash escapes for the separators.
    static func write(_ value: SQLValue, into buffer: inout ByteBuffer) {
        switch value {
        case .null:
            buffer.writeStaticString("\\N")
        case .integer(let integer):
            buffer.writeString(String(integer))
        case .real(let real):
            buffer.writeString(String(real))
        case .text(let text):
            for byte in text.utf8 {
                switch byte {
                case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
                case UInt8(ascii: "\t"): buffer.writeStaticString("\\t")
                case UInt8(ascii: "\n"): buffer.writeStaticString("\\n")
                case UInt8(ascii: "\r"): buffer.writeStaticString("\\r")
                default: buffer.writeInteger(byte)
                }
            }
        }
    }
}
