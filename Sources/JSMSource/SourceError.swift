/// The one error type of the source adapter.
///
/// The producer shows it to the operator before it publishes anything, so it names the table and
/// column that are wrong rather than surfacing a driver's message half-way through a read.
public struct SourceError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was wrong, coarse enough to switch on (and to map to an exit code).
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The source lacks a table or column the adapter reads: it is not a Jira database, or not
        /// a version this adapter knows.
        case missingSchemaObject = "missing_schema_object"
        /// A statement expected to be small returned more rows than the adapter holds in memory.
        case tooManyRows = "too_many_rows"
        /// The server refused the configured role, password or database.
        case loginRefused = "login_refused"
        /// The adapter was asked for something it cannot do (an unusable schema name, a closed source).
        case invalidRequest = "invalid_request"
    }

    /// What was wrong.
    public var code: Code
    /// A sentence naming the cause.
    public var message: String
    /// For ``Code/missingSchemaObject``: every table or column missing, in the order the adapter needs them.
    public var missing: [MissingSchemaObject]
    /// Where in this code base the error was raised, for bug reports.
    public var location: String

    /// Creates an error; the source location is captured automatically.
    public init(
        _ code: Code, _ message: String, missing: [MissingSchemaObject] = [], file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.missing = missing
        self.location = "\(file):\(line)"
    }

    /// One line for the operator.
    public var description: String { "\(code.rawValue): \(message)" }
}

/// A table or column the source lacks.
public struct MissingSchemaObject: Sendable, Hashable, CustomStringConvertible {
    /// The table, as Jira names it.
    public let table: String
    /// The column; `nil` when the whole table is missing.
    public let column: String?

    /// Records a missing table (`column == nil`) or column.
    public init(table: String, column: String?) {
        self.table = table
        self.column = column
    }

    /// `table cwd_user` or `column cwd_user.lower_email_address`.
    public var description: String {
        if let column { return "column \(table).\(column)" }
        return "table \(table)"
    }
}
