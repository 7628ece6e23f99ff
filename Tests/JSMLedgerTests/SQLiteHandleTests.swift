import Foundation
import Testing

@testable import JSMLedger

/// The ledger's own SQLite connection keeps its prepared statements: a kept statement must bind
/// every run's values afresh, survive a failed run, and bind empty texts and blobs as values.
@Suite("The ledger's SQLite connection and its statement cache")
struct SQLiteHandleTests {
    /// A fresh database file, removed afterwards, with one table of a text key, a non-null text and
    /// a blob.
    private func withHandle(_ body: (SQLiteHandle) async throws -> Void) async throws {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("jsm-sqlite-handle-\(UInt64.random(in: 0...UInt64.max)).sqlite").path
        defer {
            for file in [path, path + "-wal", path + "-shm"] { try? FileManager.default.removeItem(atPath: file) }
        }
        let handle = try await SQLiteHandle.open(path: path)
        do {
            _ = try await handle.query(
                "CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT NOT NULL, b BLOB, n BIGINT)", [])
            try await body(handle)
        } catch {
            await handle.close()
            throw error
        }
        await handle.close()
    }

    @Test("one statement run 300 times with 40 parameters each stores every run's own values")
    func rebindsEveryRun() async throws {
        try await withHandle { handle in
            // 10 rows of 4 parameters: past the 31st parameter, which SQLite tracks as one for re-planning.
            let values = (0..<10).map { "(?\($0 * 4 + 1), ?\($0 * 4 + 2), ?\($0 * 4 + 3), ?\($0 * 4 + 4))" }
            let insert = "INSERT INTO t (k, v, b, n) VALUES " + values.joined(separator: ", ")
            for run in 0..<300 {
                var binds: [SQLValue] = []
                for row in 0..<10 {
                    binds += [
                        .text("k\(run)-\(row)"), .text("v\(run * 10 + row)"), .bytes([UInt8(row)]), .int(Int64(run)),
                    ]
                }
                _ = try await handle.query(insert, binds)
            }
            let rows = try await handle.query("SELECT COUNT(*), COUNT(DISTINCT v), SUM(n) FROM t", [])
            #expect(rows.first?.optionalInt(0) == 3000)
            #expect(rows.first?.optionalInt(1) == 3000)
            #expect(rows.first?.optionalInt(2) == Int64((0..<300).reduce(0, +) * 10))
            let one = try await handle.query("SELECT v, b, n FROM t WHERE k = $1", [.text("k123-7")])
            #expect(one.first?.optionalText(0) == "v1237")
            #expect(one.first?.optionalBytes(1) == [7])
            #expect(one.first?.optionalInt(2) == 123)
        }
    }

    @Test("an empty text and an empty blob are stored as values, not as NULL")
    func emptyValues() async throws {
        try await withHandle { handle in
            _ = try await handle.query(
                "INSERT INTO t (k, v, b) VALUES ($1, $2, $3)", [.text("e"), .text(""), .bytes([])])
            let row = try await handle.query(
                "SELECT v, v IS NULL, b IS NULL, length(b), typeof(b) FROM t WHERE k = $1", [.text("e")]
            ).first
            #expect(row?.optionalText(0) == "")
            #expect(row?.optionalInt(1) == 0)
            #expect(row?.optionalInt(2) == 0)
            #expect(row?.optionalInt(3) == 0)
            #expect(row?.optionalText(4) == "blob")
        }
    }

    @Test("a kept statement that failed (a constraint) runs again with new values")
    func failedRunLeavesStatementUsable() async throws {
        try await withHandle { handle in
            let insert = "INSERT INTO t (k, v) VALUES ($1, $2)"
            _ = try await handle.query(insert, [.text("a"), .text("1")])
            await #expect(throws: SQLiteFailure.self) {
                _ = try await handle.query(insert, [.text("a"), .text("2")])
            }
            let error = await #expect(throws: SQLiteFailure.self) {
                _ = try await handle.query(insert, [.text("b"), .null])
            }
            #expect(error?.message.contains("NOT NULL") == true)
            _ = try await handle.query(insert, [.text("c"), .text("3")])
            let rows = try await handle.query("SELECT k, v FROM t ORDER BY k", [])
            #expect(rows.map { $0.optionalText(0) } == ["a", "c"])
            #expect(rows.map { $0.optionalText(1) } == ["1", "3"])
        }
    }

    @Test("statements beyond the cache's budget are evicted and prepared again correctly")
    func evictsBeyondBudget() async throws {
        try await withHandle { handle in
            // Each distinct 500-row VALUES text is a statement of its own, a few hundred KiB of
            // program: 61 of them exceed the 8 MiB budget.
            func insert(_ shape: Int, key: String) async throws {
                let rows = (0..<500).map { "(?\($0 * 4 + 1), ?\($0 * 4 + 2), ?\($0 * 4 + 3), ?\($0 * 4 + 4))" }
                let sql = "INSERT INTO t (k, v, b, n) VALUES \(rows.joined(separator: ", ")) -- shape \(shape)"
                var binds: [SQLValue] = []
                for row in 0..<500 { binds += [.text("\(key)-\(row)"), .text(key), .null, .int(Int64(shape))] }
                _ = try await handle.query(sql, binds)
            }
            for shape in 0...60 { try await insert(shape, key: "s\(shape)") }
            let use = await handle.cacheUse
            #expect(use.statements < 61, "some of the 61 shapes must have been evicted")
            #expect(use.bytes <= SQLiteHandle.cacheBudgetBytes)
            // The first shape was evicted long ago: prepared again, it still binds correctly.
            try await insert(0, key: "again")
            let counts = try await handle.query("SELECT COUNT(*), SUM(v = 'again'), SUM(n = 0) FROM t", [])
            let total: Int64 = 62 * 500
            #expect(counts.first?.optionalInt(0) == total)
            #expect(counts.first?.optionalInt(1) == 500)
            #expect(counts.first?.optionalInt(2) == 1000)
        }
    }
}
