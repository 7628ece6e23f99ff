/// The one error the ledger throws: what went wrong, in which operation, and whether trying again
/// can help.
///
/// Workers decide between a delayed retry and parking a batch from ``isRetriable`` alone, so every
/// database failure is classified once, here, instead of in every caller. Messages name the
/// operation and never carry a password, a connection string or an identity's email.
public struct LedgerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kinds of failure a caller reacts to differently.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The database cannot be reached, or the connection was lost: retry later, nothing was lost.
        case unavailable
        /// Another transaction got in the way (serialization failure, deadlock, busy file): retry.
        case transactionConflict = "transaction_conflict"
        /// A migration with this id exists with other options: the operator must choose.
        case migrationConflict = "migration_conflict"
        /// The migration, project or batch named does not exist.
        case notFound = "not_found"
        /// The request contradicts the ledger's state (a claim after the scope was cut, a completion
        /// that does not cover its batch, ...): a bug or a stale message, never fixed by retrying.
        case invalidRequest = "invalid_request"
        /// The database refused a row (a constraint): nothing of the transaction was kept.
        case constraintViolation = "constraint_violation"
        /// The database holds a ledger schema newer than this program knows.
        case schemaTooNew = "schema_too_new"
        /// The server refused the configured role, password or database: the operator must fix
        /// the configuration.
        case loginRefused = "login_refused"
        /// Any other database failure.
        case database
    }

    /// What went wrong.
    public let code: Code
    /// The ledger operation that failed, e.g. `completeBatch`.
    public let operation: String
    /// One line for logs and operators; no secrets, no emails.
    public let message: String
    /// Where the error was raised, for bug reports.
    public let location: String

    /// Creates an error; the ledger is its only intended author.
    public init(_ code: Code, operation: String, _ message: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.operation = operation
        self.message = message
        self.location = "\(file):\(line)"
    }

    /// Whether the same call may succeed later: the database was unreachable or busy, and the
    /// transaction was rolled back, so nothing was half-written.
    public var isRetriable: Bool {
        switch code {
        case .unavailable, .transactionConflict: return true
        case .migrationConflict, .notFound, .invalidRequest, .constraintViolation, .schemaTooNew, .loginRefused,
            .database:
            return false
        }
    }

    /// `ledger <operation> failed (<code>, retriable): <message>`.
    public var description: String {
        "ledger \(operation) failed (\(code.rawValue)\(isRetriable ? ", retriable" : "")): \(message)"
    }
}
