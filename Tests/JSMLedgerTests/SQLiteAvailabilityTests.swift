import Foundation
import Testing

@testable import JSMLedger

/// SQLite on one host: another process holding the file makes a write wait, then fail in a way
/// a worker retries, with nothing half-written.
@Suite("Ledger on a busy SQLite file")
struct SQLiteAvailabilityTests {
    @Test("a write blocked past the busy timeout is a retriable conflict and changes nothing")
    func busyFile() async throws {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("jsm-ledger-busy-\(UInt64.random(in: 0...UInt64.max)).sqlite").path
        defer {
            for file in [path, path + "-wal", path + "-shm"] { try? FileManager.default.removeItem(atPath: file) }
        }
        try await Ledger.withSQLite(SQLiteLedgerConfiguration(path: path)) { holder in
            _ = try await holder.createOrResumeMigration(definition("m1"))
            let impatient = SQLiteLedgerConfiguration(path: path, busyTimeout: .milliseconds(100))
            try await Ledger.withSQLite(impatient) { other in
                // The holder keeps a write transaction open while the other connection tries to write.
                try await holder.database.transaction("hold") { session in
                    try await session.execute("UPDATE ledger_migrations SET updated_at_ms = 1", [])
                    let error = await #expect(throws: LedgerError.self) {
                        try await other.setMigrationState("m1", to: .running)
                    }
                    #expect(error?.code == .transactionConflict)
                    #expect(error?.isRetriable == true)
                    #expect(error?.operation == "setMigrationState")
                }
                #expect(try await other.migration("m1")?.state == .saved)
                #expect(try await other.setMigrationState("m1", to: .running))
            }
        }
    }
}
