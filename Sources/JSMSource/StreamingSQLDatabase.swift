// The one capability the Jira source needs from a database: run a read statement and stream its rows.

/// Which SQL dialect a database speaks, for the few statements that cannot be written once
/// (catalog queries, bulk loading).
public enum SQLDialect: String, Sendable, Hashable, CaseIterable {
    /// PostgreSQL, production's replica.
    case postgres
    /// SQLite, the embedded default for demos and tests.
    case sqlite
}

/// A SQL database that streams the rows of a statement.
///
/// The Jira source holds all its SQL once and runs it through this protocol, so PostgreSQL and
/// SQLite answer the same queries with the same ``SQLRecord`` values. Rows arrive in small chunks
/// with back-pressure: reading a million users keeps memory flat.
public protocol StreamingSQLDatabase: Sendable {
    /// The dialect, for catalog queries.
    var dialect: SQLDialect { get }

    /// The schema the Jira tables live in (`nil`: the connection's default); catalog checks look there.
    var schema: String? { get }

    /// The quoted, schema-qualified name of a table (`"jira"."cwd_user"`), so statements can be
    /// written once whatever schema the tables sit in, with Jira's upper-case `AO_` names preserved.
    func table(_ name: String) -> String

    /// Runs a read statement; its rows are produced as the sequence is iterated, and the statement
    /// is abandoned when the iteration is.
    func rows(_ statement: SQLStatement) -> SQLRowStream
}

extension StreamingSQLDatabase {
    /// Runs a statement whose result is small (the licensing catalog, a batch of keys) and collects it.
    ///
    /// - Parameter limit: the most rows accepted; more is a ``SourceError`` instead of unbounded memory.
    public func collect(_ statement: SQLStatement, limit: Int = 5_000_000) async throws -> [SQLRecord] {
        var records: [SQLRecord] = []
        for try await record in rows(statement) {
            guard records.count < limit else {
                throw SourceError(.tooManyRows, "a statement returned more than \(limit) rows: \(statement.sql)")
            }
            records.append(record)
        }
        return records
    }

    /// Quotes an identifier for both dialects (double quotes, doubled inside).
    public static func quote(_ identifier: String) -> String {
        "\"" + identifier.replacingAll("\"", with: "\"\"") + "\""
    }
}

/// A producer of row chunks behind an ``SQLRowStream``, one per running statement.
///
/// A class so that dropping the stream's iterator drops it, and its `deinit` stops the statement.
public protocol SQLChunkSource: AnyObject {
    /// The next few rows; `nil` once the statement has no more.
    func nextChunk() async throws -> [SQLRecord]?
}

/// The rows of one statement, read lazily in chunks.
///
/// The statement starts on the first `next()`, so building the sequence costs nothing; each
/// iteration runs the statement again.
public struct SQLRowStream: AsyncSequence, Sendable {
    /// Each row.
    public typealias Element = SQLRecord

    /// Starts the statement.
    let start: @Sendable () async throws -> any SQLChunkSource

    /// Creates a stream whose statement `start` launches.
    public init(start: @escaping @Sendable () async throws -> any SQLChunkSource) {
        self.start = start
    }

    /// Starts reading.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(start: start) }

    /// Reads the chunks one after the other.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var start: (@Sendable () async throws -> any SQLChunkSource)?
        var source: (any SQLChunkSource)?
        var chunk: [SQLRecord] = []
        var index = 0

        /// The next row; `nil` at the end, and after an error has been thrown once.
        public mutating func next() async throws -> SQLRecord? {
            // Bounded: each pass either returns a row, ends the stream, or consumes one chunk.
            while index >= chunk.count {
                if source == nil {
                    guard let start else { return nil }
                    self.start = nil
                    source = try await start()
                }
                do {
                    guard let next = try await source?.nextChunk() else {
                        source = nil
                        chunk = []
                        index = 0
                        return nil
                    }
                    chunk = next
                    index = 0
                } catch {
                    source = nil
                    chunk = []
                    index = 0
                    throw error
                }
            }
            defer { index += 1 }
            return chunk[index]
        }
    }
}
