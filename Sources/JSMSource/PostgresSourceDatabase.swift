import Logging
import PostgresNIO

/// A Jira database on PostgreSQL (production: a read replica), read through a `PostgresClient`.
///
/// The client is the caller's: it must be running (`client.run()` in a task group) before the
/// first row is read. Rows stream with postgres-nio's back-pressure, a few hundred at a time.
public struct PostgresSourceDatabase: StreamingSQLDatabase {
    /// The running client.
    public let client: PostgresClient
    /// The schema holding the Jira tables; `nil` for the connection's `search_path`.
    public let schema: String?
    /// Where statement failures are logged (never with bound values).
    public let logger: Logger
    /// Rows handed over per chunk.
    let chunkSize: Int

    /// Always PostgreSQL.
    public var dialect: SQLDialect { .postgres }

    /// Reads the Jira tables of `schema` through `client`.
    public init(client: PostgresClient, schema: String? = nil, logger: Logger = Logger(label: "jsm.source.postgres")) {
        self.client = client
        self.schema = schema
        self.logger = logger
        self.chunkSize = 512
    }

    /// `"schema"."name"`, or `"name"` without a schema.
    public func table(_ name: String) -> String {
        guard let schema else { return Self.quote(name) }
        return Self.quote(schema) + "." + Self.quote(name)
    }

    /// Streams the rows of a statement.
    public func rows(_ statement: SQLStatement) -> SQLRowStream {
        let client = client
        let logger = logger
        let chunkSize = chunkSize
        return SQLRowStream {
            let rows = try await client.query(Self.query(statement), logger: logger)
            return PostgresChunkSource(iterator: rows.makeAsyncIterator(), chunkSize: chunkSize)
        }
    }

    /// Runs a statement that returns no rows (DDL, bulk loads in the fixtures).
    public func execute(_ sql: String) async throws {
        try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger)
    }

    /// Binds ``SQLValue``s as PostgreSQL parameters.
    static func query(_ statement: SQLStatement) -> PostgresQuery {
        var bindings = PostgresBindings(capacity: statement.binds.count)
        for value in statement.binds {
            switch value {
            case .null: bindings.appendNull()
            case .integer(let integer): bindings.append(integer)
            case .text(let text): bindings.append(text)
            case .real(let real): bindings.append(real)
            }
        }
        return PostgresQuery(unsafeSQL: statement.sql, binds: bindings)
    }

    /// Turns a PostgreSQL cell into the neutral value: integers of any width as 64-bit, `numeric`
    /// (Jira's id type on PostgreSQL) as an integer when it is whole, anything else as text.
    static func value(_ cell: PostgresCell) throws -> SQLValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8, .oid:
            return .integer(try cell.decode(Int64.self))
        case .bool:
            return .integer(try cell.decode(Bool.self) ? 1 : 0)
        case .float4, .float8:
            return .real(try cell.decode(Double.self))
        case .numeric:
            let text = try cell.decode(String.self)
            if let integer = Int64(text) { return .integer(integer) }
            if let real = Double(text) { return .real(real) }
            return .text(text)
        default:
            return .text(try cell.decode(String.self))
        }
    }
}

/// Pulls rows from a running PostgreSQL statement; dropping it cancels the statement.
final class PostgresChunkSource: SQLChunkSource {
    var iterator: PostgresRowSequence.AsyncIterator
    let chunkSize: Int

    init(iterator: PostgresRowSequence.AsyncIterator, chunkSize: Int) {
        self.iterator = iterator
        self.chunkSize = chunkSize
    }

    func nextChunk() async throws -> [SQLRecord]? {
        var chunk: [SQLRecord] = []
        chunk.reserveCapacity(chunkSize)
        while chunk.count < chunkSize, let row = try await iterator.next() {
            var values: [SQLValue] = []
            values.reserveCapacity(row.count)
            for cell in row { values.append(try PostgresSourceDatabase.value(cell)) }
            chunk.append(SQLRecord(values))
        }
        return chunk.isEmpty ? nil : chunk
    }
}

extension PostgresSourceDatabase {
    /// A client configuration from the `POSTGRES_*` variables the project's scripts export
    /// (`POSTGRES_HOST`, `POSTGRES_PORT`, `POSTGRES_USER`, `POSTGRES_PASSWORD`, `POSTGRES_DB`),
    /// so tools and tests point at the same database the same way. TLS is off: the scripts'
    /// server listens on loopback only.
    ///
    /// - Parameter environment: the process environment, passed in so the library reads no globals.
    public static func configuration(fromEnvironment environment: [String: String]) throws
        -> PostgresClient.Configuration
    {
        guard let password = environment["POSTGRES_PASSWORD"], !password.isEmpty else {
            throw SourceError(
                .invalidRequest, "POSTGRES_PASSWORD is not set (source .data/env.sh, written by scripts/services.sh)")
        }
        guard let port = Int(environment["POSTGRES_PORT"] ?? "55432") else {
            throw SourceError(.invalidRequest, "POSTGRES_PORT is not a number")
        }
        return PostgresClient.Configuration(
            host: environment["POSTGRES_HOST"] ?? "127.0.0.1", port: port,
            username: environment["POSTGRES_USER"] ?? "jsm", password: password,
            database: environment["POSTGRES_DB"] ?? "jsm", tls: .disable)
    }
}
