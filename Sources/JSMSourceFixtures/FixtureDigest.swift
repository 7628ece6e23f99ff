import JSMSource

/// A fingerprint of a fixture database's content, to prove that a seed reproduces a database and
/// that two backends hold the same rows.
public enum FixtureDigest {
    /// FNV-1a over every table of ``JiraTables/all``, rows in primary-key order, values in column order.
    public static func digest(of database: any StreamingSQLDatabase) async throws -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        func mix(_ text: String) {
            for byte in text.utf8 {
                hash ^= UInt64(byte)
                hash &*= 0x0000_0100_0000_01B3
            }
        }
        for table in JiraTables.all {
            mix("table \(table.name)\n")
            let columns = table.columns.map { column -> String in
                // Integers are cast so INTEGER and BIGINT columns read back alike on both backends.
                column.type == .text
                    ? "\"\(column.name)\"" : "CAST(\"\(column.name)\" AS BIGINT)"
            }
            let sql =
                "SELECT \(columns.joined(separator: ", ")) FROM \(database.table(table.name)) "
                + "ORDER BY \"\(table.columns[0].name)\""
            for try await record in database.rows(SQLStatement(sql)) {
                for value in record.values {
                    mix(value.description)
                    mix("\u{1F}")
                }
                mix("\n")
            }
        }
        return hash
    }
}
