/// The statements of one open transaction: every ledger operation runs inside one, so that a
/// failure anywhere rolls back everything that operation wrote.
protocol LedgerSession: Sendable {
    /// The database's SQL differences.
    var dialect: SQLDialect { get }
    /// Runs a statement written with `$n` parameters and returns its rows.
    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow]
    /// Runs a statement whose rows, if any, nobody reads.
    func execute(_ sql: String, _ binds: [SQLValue]) async throws
    /// Runs statements in order, each with `leading` then its own values, and returns each one's
    /// rows. SQLite runs them in one turn of its connection's thread: statement by statement,
    /// the connection waited for the calling task to be scheduled again between two.
    func queryEach(_ statements: [BoundStatement], leading: [SQLValue]) async throws -> [[SQLRow]]
}

/// A statement written with `$n` parameters and the values it is run with.
struct BoundStatement: Sendable {
    let sql: String
    let binds: [SQLValue]
}

/// A database the ledger runs on: it opens transactions and classifies its own failures.
protocol LedgerDatabase: Sendable {
    /// The database's SQL differences.
    var dialect: SQLDialect { get }
    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws.
    /// Failures surface as ``LedgerError`` naming `operation`.
    /// A `readOnly` transaction writes nothing, which lets SQLite defer its lock.
    func transaction<T: Sendable>(
        _ operation: String, readOnly: Bool, _ body: @escaping @Sendable (any LedgerSession) async throws -> T
    ) async throws(LedgerError) -> T
}

extension LedgerDatabase {
    /// A read-write transaction.
    func transaction<T: Sendable>(
        _ operation: String, _ body: @escaping @Sendable (any LedgerSession) async throws -> T
    ) async throws(LedgerError) -> T {
        try await transaction(operation, readOnly: false, body)
    }
}

extension LedgerSession {
    /// Runs a statement and returns its first row, if any.
    func first(_ sql: String, _ binds: [SQLValue]) async throws -> SQLRow? {
        try await query(sql, binds).first
    }

    /// One statement after the other (PostgreSQL's round trips are the cost there, not a hop).
    func queryEach(_ statements: [BoundStatement], leading: [SQLValue]) async throws -> [[SQLRow]] {
        var results: [[SQLRow]] = []
        results.reserveCapacity(statements.count)
        for statement in statements { results.append(try await query(statement.sql, leading + statement.binds)) }
        return results
    }
}
