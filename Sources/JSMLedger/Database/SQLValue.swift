import Synchronization

/// A value bound to, or read from, a ledger statement; the same for both databases so that the
/// ledger's SQL is written once.
enum SQLValue: Sendable, Hashable {
    case int(Int64)
    case text(String)
    case bytes([UInt8])
    case null
    /// A PostgreSQL array parameter (UNNEST); SQLite never receives one.
    case intArray([Int64])
    /// A PostgreSQL array parameter (UNNEST); SQLite never receives one.
    case textArray([String])
    /// A PostgreSQL array parameter (UNNEST); SQLite never receives one.
    case boolArray([Bool])

    static func optionalText(_ value: String?) -> SQLValue { value.map(SQLValue.text) ?? .null }
    static func optionalInt(_ value: Int64?) -> SQLValue { value.map(SQLValue.int) ?? .null }
}

/// One result row, decoded eagerly into ``SQLValue``s in select-list order.
struct SQLRow: Sendable {
    let values: [SQLValue]

    func int(_ index: Int) throws(LedgerError) -> Int64 {
        guard let value = optionalInt(index) else { throw Self.typeError(index, "an integer") }
        return value
    }

    func optionalInt(_ index: Int) -> Int64? {
        guard index < values.count, case .int(let value) = values[index] else { return nil }
        return value
    }

    func text(_ index: Int) throws(LedgerError) -> String {
        guard let value = optionalText(index) else { throw Self.typeError(index, "a text") }
        return value
    }

    func optionalText(_ index: Int) -> String? {
        guard index < values.count, case .text(let value) = values[index] else { return nil }
        return value
    }

    func optionalBytes(_ index: Int) -> [UInt8]? {
        guard index < values.count, case .bytes(let value) = values[index] else { return nil }
        return value
    }

    private static func typeError(_ index: Int, _ expected: String) -> LedgerError {
        LedgerError(.database, operation: "decode", "column \(index) is not \(expected)")
    }
}

/// The type of one column of a bulk row set.
enum BulkColumnType: Sendable {
    case text
    case int
    case optionalText
    case optionalInt
}

/// Rows handed to one set-based statement as a common table expression `u(columns)`: UNNEST of
/// one array per column on PostgreSQL, a multi-row VALUES list on SQLite.
struct BulkRows: Sendable {
    let columns: [(name: String, type: BulkColumnType)]
    /// Row after row, one value per column: one buffer for all the rows (an array per row was an
    /// allocation per claimed identity), and already SQLite's bind order.
    private(set) var values: [SQLValue] = []
    private(set) var count = 0

    init(_ columns: [(name: String, type: BulkColumnType)]) { self.columns = columns }

    mutating func append(_ row: [SQLValue]) {
        precondition(row.count == columns.count, "a bulk row must have one value per column")
        values.append(contentsOf: row)
        count += 1
    }

    var isEmpty: Bool { count == 0 }

    /// Every row's value in column `index`, transformed, in row order (one array per column).
    func column<T>(_ index: Int, _ transform: (SQLValue) -> T) -> [T] {
        stride(from: index, to: values.count, by: columns.count).map { transform(values[$0]) }
    }
}

/// What differs between the two databases' SQL; everything else is written once.
enum SQLDialect: Sendable {
    case postgres
    case sqlite

    /// Statements are written with `$1`, `$2`, ...; SQLite binds those as `?1`, `?2`, ... .
    func statement(_ sql: String) -> String {
        switch self {
        case .postgres: return sql
        case .sqlite: return sql.replacingDollarPlaceholders()
        }
    }

    /// Fills the DDL placeholders: `{BYTES}` (binary column type) and `{C}` (byte-order collation,
    /// so that PostgreSQL sorts emails exactly as SQLite and Swift do, whatever the server locale).
    func ddl(_ sql: String) -> String {
        switch self {
        case .postgres:
            return sql.replacing("{BYTES}", with: "BYTEA").replacing("{C}", with: " COLLATE \"C\"")
        case .sqlite:
            return sql.replacing("{BYTES}", with: "BLOB").replacing("{C}", with: "")
        }
    }

    /// `FOR SHARE` on PostgreSQL, so that a reader holds the row against a concurrent phase change;
    /// SQLite serialises writers already.
    var forShare: String {
        switch self {
        case .postgres: return " FOR SHARE"
        case .sqlite: return ""
        }
    }

    /// `column` is one of the values `subquery` selects, the subquery run once. PostgreSQL's
    /// `IN (subquery)` is a semi-join the planner may run again for every outer row when its
    /// statistics underestimate the table; `= ANY (ARRAY(subquery))` is computed once and checked
    /// against a hashed array. SQLite runs an `IN` subquery once already.
    func isAmong(_ column: String, _ subquery: String) -> String {
        switch self {
        case .postgres: return "\(column) = ANY (ARRAY(\(subquery)))"
        case .sqlite: return "\(column) IN (\(subquery))"
        }
    }

    /// `WITH u(c1, c2, ...) AS (...)` for the rows, with parameters numbered from `firstParameter`,
    /// and the values to bind.
    func withRows(_ rows: BulkRows, named name: String = "u", firstParameter: Int) -> (sql: String, binds: [SQLValue]) {
        let columnList = rows.columns.map(\.name).joined(separator: ", ")
        switch self {
        case .postgres:
            var arrays: [String] = []
            var aliases: [String] = []
            var selects: [String] = []
            var binds: [SQLValue] = []
            var parameter = firstParameter
            for (index, column) in rows.columns.enumerated() {
                let alias = "c\(index)"
                func add(_ value: SQLValue, _ type: String, _ alias: String) {
                    arrays.append("$\(parameter)::\(type)[]")
                    aliases.append(alias)
                    binds.append(value)
                    parameter += 1
                }
                switch column.type {
                case .text:
                    add(.textArray(rows.column(index, \.textValue)), "text", alias)
                    selects.append(alias)
                case .int:
                    add(.intArray(rows.column(index, \.intValue)), "int8", alias)
                    selects.append(alias)
                case .optionalText:
                    add(.textArray(rows.column(index, \.textValue)), "text", alias)
                    add(.boolArray(rows.column(index) { $0 == .null }), "bool", alias + "n")
                    selects.append("CASE WHEN \(alias)n THEN NULL ELSE \(alias) END")
                case .optionalInt:
                    add(.intArray(rows.column(index, \.intValue)), "int8", alias)
                    add(.boolArray(rows.column(index) { $0 == .null }), "bool", alias + "n")
                    selects.append("CASE WHEN \(alias)n THEN NULL ELSE \(alias) END")
                }
            }
            let sql =
                "WITH \(name)(\(columnList)) AS (SELECT \(selects.joined(separator: ", ")) "
                + "FROM UNNEST(\(arrays.joined(separator: ", "))) AS x(\(aliases.joined(separator: ", "))))"
            return (sql, binds)
        case .sqlite:
            let shape = ValuesShape(
                name: name, columns: columnList, rows: rows.count, width: rows.columns.count, first: firstParameter)
            return (ValuesShape.sql(for: shape), rows.values)
        }
    }
}

/// The shape of a SQLite `WITH name(columns) AS (VALUES (?1, ?2), ...)` clause: the same shape is
/// the same text, so it is built once and reused (bulk statements of 500 rows are built thousands
/// of times in a large migration, and building them showed in profiles).
struct ValuesShape: Hashable, Sendable {
    let name: String
    let columns: String
    let rows: Int
    let width: Int
    let first: Int

    /// Shapes built so far; bounded, since a few statements with a few row counts cover a migration.
    private static let cache = Mutex<[ValuesShape: String]>([:])
    private static let cacheLimit = 512

    static func sql(for shape: ValuesShape) -> String {
        if let known = cache.withLock({ $0[shape] }) { return known }
        var text = "WITH \(shape.name)(\(shape.columns)) AS (VALUES "
        text.reserveCapacity(text.utf8.count + shape.rows * shape.width * 8)
        var parameter = shape.first
        for row in 0..<shape.rows {
            text += row == 0 ? "(" : ", ("
            for column in 0..<shape.width {
                if column > 0 { text += ", " }
                text += "?"
                text += String(parameter)
                parameter += 1
            }
            text += ")"
        }
        text += ")"
        cache.withLock { known in
            if known.count < cacheLimit { known[shape] = text }
        }
        return text
    }
}

extension SQLValue {
    /// The text of a text or null value (null becomes `""`, flagged separately by the caller).
    fileprivate var textValue: String {
        if case .text(let value) = self { return value }
        return ""
    }

    /// The integer of an integer or null value (null becomes 0, flagged separately by the caller).
    fileprivate var intValue: Int64 {
        if case .int(let value) = self { return value }
        return 0
    }
}

extension String {
    /// Rewrites `$<digits>` to `?<digits>` (SQLite's numbered parameters). The ledger's SQL holds
    /// no `$` inside string literals, so a plain scan of the UTF-8 bytes is exact.
    fileprivate func replacingDollarPlaceholders() -> String {
        let dollar = UInt8(ascii: "$")
        var bytes = Array(utf8)
        guard bytes.contains(dollar) else { return self }
        for index in bytes.indices.dropLast() where bytes[index] == dollar {
            let next = bytes[index + 1]
            if next >= UInt8(ascii: "0") && next <= UInt8(ascii: "9") { bytes[index] = UInt8(ascii: "?") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
