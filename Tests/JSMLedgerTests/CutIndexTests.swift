import Foundation
import JSMDomain
import Testing

@testable import JSMLedger

/// The scope's email order (`ledger_scope_order`) serves the cut only. PostgreSQL's cut writes a
/// new version of every row it gives a batch; while the index held every undecided identity,
/// each of those versions got a second entry there that nothing reads (a quarter of the cut's
/// WAL records at 1M). Since schema v7 it holds on PostgreSQL only the identities awaiting the cut,
/// and since v9 its condition names no column a worker's outcome update writes, so that update is
/// HOT (in place on the row's page, no index entry written).
@Suite("Ledger on PostgreSQL: the cut and the outcome updates write no needless index entries")
struct CutIndexTests {
    @Test("the email order keeps its size through the cut, and the cut's reads can still use it")
    func cutAddsNoEmailOrderEntries() async throws {
        try await withTestLedger(.postgres) { ledger in
            // Vacuum would hide extra entries by removing the dead ones; keep them visible.
            try await rawExecute(ledger, "ALTER TABLE ledger_scope SET (autovacuum_enabled = false)")
            _ = try await ledger.createOrResumeMigration(definition("m1", projects: [], batchSize: 100))
            let people = (0..<20_000).map { People.customer("c\($0)", "c\($0 / 2)@example.com") }
            try await ledger.claimScope(migrationId: "m1", identities: people)

            #expect(try await usesEmailOrder(ledger, "SELECT COUNT(*) FROM ledger_scope WHERE migration_id = $1"))
            #expect(
                try await usesEmailOrder(
                    ledger,
                    "SELECT normalized_email, user_key FROM ledger_scope WHERE migration_id = $1 "
                        + "ORDER BY normalized_email, user_key"))

            let before = try await emailOrderBytes(ledger)
            let advance = try await ledger.advanceToMigratePhase(migrationId: "m1")
            #expect(advance == .advanced(BatchCut(batchCount: 200, identityCount: 20_000, settledAtCut: 0)))
            let after = try await emailOrderBytes(ledger)
            #expect(after == before, "the cut grew the email order from \(before) to \(after) bytes")
        }
    }

    @Test("a worker's outcome update is HOT: in place on the row's page, no index entry written")
    func outcomeUpdatesAreHOT() async throws {
        try await withTestLedger(.postgres) { ledger in
            _ = try await ledger.createOrResumeMigration(definition("m1", projects: [], batchSize: 100))
            let people = (0..<20_000).map { People.customer("c\($0)", "c\($0 / 2)@example.com") }
            try await ledger.claimScope(migrationId: "m1", identities: people)
            _ = try await ledger.advanceToMigratePhase(migrationId: "m1")
            try await completeAllBatches(ledger, "m1")
            // The cut's update of every row (never HOT: it writes `batch_id`) and the workers' one.
            // A backend reports its counts within seconds of going idle: wait for both, bounded.
            var counts: (updated: Int64, hot: Int64) = (0, 0)
            for _ in 0..<300 {
                let row = try await ledger.database.transaction("table statistics", readOnly: true) { session in
                    try await session.first(
                        """
                        SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
                        WHERE relid = 'ledger_scope'::regclass
                        """, [])
                }
                counts = (try row?.int(0) ?? 0, try row?.int(1) ?? 0)
                if counts.updated >= 40_000 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            try #require(counts.updated >= 40_000, "PostgreSQL reported \(counts.updated) of 40,000 scope row updates")
            // Without room on the page, or with `outcome` in an index's condition, next to none are.
            #expect(counts.hot >= 15_000, "\(counts.hot) of the 20,000 outcome updates were HOT")
            let settled = try await ledger.database.transaction("count", readOnly: true) { session in
                try await session.first(
                    "SELECT COUNT(*) FROM ledger_scope WHERE migration_id = 'm1' AND outcome = 'created'", [])
            }
            #expect(try settled?.int(0) == 20_000)
        }
    }

    /// The size of the email order's index on disk.
    private func emailOrderBytes(_ ledger: Ledger) async throws -> Int64 {
        let rows = try await ledger.database.transaction("index size", readOnly: true) { session in
            try await session.query("SELECT pg_relation_size('ledger_scope_order')", [])
        }
        return try rows.first?.int(0) ?? -1
    }

    /// Whether PostgreSQL can read the email order for `sql` restricted to the rows awaiting the
    /// cut (a partial index is used only when the query's condition implies the index's own);
    /// sequential scans are switched off so that it picks the index whenever it may.
    private func usesEmailOrder(_ ledger: Ledger, _ sql: String) async throws -> Bool {
        let plan = try await ledger.database.transaction("explain") { session in
            try await session.execute("SET LOCAL enable_seqscan = off", [])
            return try await session.query(
                "EXPLAIN (COSTS OFF) "
                    + sql.replacing(
                        "WHERE migration_id = $1", with: "WHERE migration_id = $1 AND " + Ledger.awaitingCut(.postgres)),
                [.text("m1")])
        }
        let lines = try plan.map { try $0.text(0) }
        return lines.contains { $0.contains("ledger_scope_order") }
    }
}
