// The database-neutral values the source adapter reads, so that one query logic serves PostgreSQL and SQLite.

/// One value of a result row, as both backends can express it.
///
/// The Jira query logic reads these instead of driver types, so the PostgreSQL and SQLite adapters
/// return the same values for the same rows and their classifications can be compared exactly.
public enum SQLValue: Sendable, Hashable, CustomStringConvertible {
    /// SQL NULL.
    case null
    /// An integer column (ids, `active` flags), 64-bit on both backends.
    case integer(Int64)
    /// A text column.
    case text(String)
    /// A floating-point column; Jira's subset has none, kept so no value is ever unrepresentable.
    case real(Double)

    /// The value in SQL literal form, for error messages and digests.
    public var description: String {
        switch self {
        case .null: return "NULL"
        case .integer(let value): return String(value)
        case .text(let value): return "'" + value.replacingAll("'", with: "''") + "'"
        case .real(let value): return String(value)
        }
    }
}

/// One result row: its values by column position, in the order the statement selects them.
public struct SQLRecord: Sendable, Hashable {
    /// The values, by column position.
    public var values: [SQLValue]

    /// Wraps a row's values.
    public init(_ values: [SQLValue]) {
        self.values = values
    }

    /// The column as an integer; `nil` for NULL, a missing column or text that is not a number, so a
    /// malformed row is reported by its reader instead of crashing it.
    public func integer(_ index: Int) -> Int64? {
        guard values.indices.contains(index) else { return nil }
        switch values[index] {
        case .integer(let value): return value
        case .text(let text): return Int64(text)
        case .real(let value): return Int64(exactly: value)
        case .null: return nil
        }
    }

    /// The column as text; `nil` for NULL or a missing column; numbers are rendered in decimal.
    public func text(_ index: Int) -> String? {
        guard values.indices.contains(index) else { return nil }
        switch values[index] {
        case .text(let value): return value
        case .integer(let value): return String(value)
        case .real(let value): return String(value)
        case .null: return nil
        }
    }
}

/// A statement with its bound parameters, written once in SQL both backends accept.
///
/// Parameters are written `$1`, `$2`... in ascending order of first appearance: PostgreSQL binds
/// them by number, SQLite by order of first appearance, so both bind the same values.
public struct SQLStatement: Sendable, Hashable, CustomStringConvertible {
    /// The SQL text.
    public var sql: String
    /// The values of `$1`, `$2`...
    public var binds: [SQLValue]

    /// Creates a statement.
    public init(_ sql: String, binds: [SQLValue] = []) {
        self.sql = sql
        self.binds = binds
    }

    /// The SQL text, without the bound values (they may hold user data).
    public var description: String { sql }
}

extension String {
    /// Replaces every occurrence of a single character; avoids importing Foundation for one call.
    func replacingAll(_ target: Character, with replacement: String) -> String {
        guard contains(target) else { return self }
        var result = ""
        result.reserveCapacity(count + 8)
        for character in self {
            if character == target { result += replacement } else { result.append(character) }
        }
        return result
    }
}
