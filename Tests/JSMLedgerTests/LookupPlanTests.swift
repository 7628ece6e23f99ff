import Foundation
import JSMDomain
import Testing

@testable import JSMLedger

/// PostgreSQL plans from statistics, and a ledger's tables are analysed while nearly empty (a new
/// ledger, the batch table before the cut fills it) and then grow faster than autovacuum catches up.
/// With such statistics a plain join read every mapping of the site for each batch (and the claims'
/// join did for each statement of 500 claims), and the lease of unpublished batches ran its
/// subquery once per pending batch. These statements must read the rows they need, whatever the
/// statistics say. (The membership lookup, `recordedMemberships`, joins the group mappings first
/// and probes the membership index already with such statistics: measured, not changed.)
@Suite("Ledger on PostgreSQL: hot statements read only the rows they need, whatever the statistics say")
struct LookupPlanTests {
    static let mappings = 20_000

    @Test("priorMappings finds its keys and reads no other mapping")
    func priorMappingsReadsOnlyItsKeys() async throws {
        try await withTestLedger(.postgres) { ledger in
            try await mappingsWithStaleStatistics(ledger)
            let known = (1...250).map { "key-\($0 * 80)" }
            let keys = known + (1...250).map { "unknown-\($0)" }

            let found = try await ledger.priorMappings(siteId: "site-a", userKeys: keys)
            #expect(found.count == known.count)
            #expect(found["key-80"] == PriorMapping(accountId: "acc-80", accountType: .customer))
            #expect(found["unknown-1"] == nil)

            var rows = BulkRows([("user_key", .text)])
            for key in keys { rows.append([.text(key)]) }
            let (with, binds) = SQLDialect.postgres.withRows(rows, firstParameter: 2)
            let read = try await rowsRead(
                ledger, from: "ledger_mappings", sql: with + Ledger.priorMappingsSelect(.postgres),
                binds: [.text("site-a")] + binds)
            #expect(read <= keys.count, "read \(read) of \(Self.mappings) mappings to look up \(keys.count) keys")
        }
    }

    @Test("claims settle the identities already mapped on the site and read no other mapping")
    func claimsReadOnlyTheirMappings() async throws {
        try await withTestLedger(.postgres) { ledger in
            try await mappingsWithStaleStatistics(ledger)
            // 250 identities an earlier migration created on site-a, 250 new ones, each its own email.
            let people =
                (1...250).map { People.customer("key-\($0 * 80)", "known\($0)@example.com") }
                + (1...250).map { People.customer("new-\($0)", "new\($0)@example.com") }
            for id in ["m1", "m2"] {
                _ = try await ledger.createOrResumeMigration(definition(id, projects: [], batchSize: 100))
            }

            let claim = try await ledger.claimScope(migrationId: "m1", identities: people)
            #expect(claim.newlyClaimed.customers == 500)
            let cut = try await ledger.advanceToMigratePhase(migrationId: "m1")
            #expect(cut == .advanced(BatchCut(batchCount: 3, identityCount: 250, settledAtCut: 250)))

            let (with, binds) = SQLDialect.postgres.withRows(Ledger.claimRows(people), firstParameter: 6)
            let read = try await rowsRead(
                ledger, from: "ledger_mappings", sql: with + Ledger.claimInsert(.postgres),
                binds: [.text("m2"), .optionalInt(nil), .int(0), .text("site-a"), .int(1)] + binds)
            #expect(
                read <= people.count, "read \(read) of \(Self.mappings) mappings to claim \(people.count) identities")
        }
    }

    @Test("leasing unpublished batches reads each batch a bounded number of times")
    func leaseReadsEachBatchOnce() async throws {
        try await withTestLedger(.postgres) { ledger in
            try await staleStatistics(ledger, table: "ledger_batches")
            let batches = 1_500
            _ = try await ledger.createOrResumeMigration(definition("m1", projects: [], batchSize: 1))
            let people = (0..<batches).map { People.customer("c\($0)", "c\($0)@example.com") }
            try await ledger.claimScope(migrationId: "m1", identities: people)
            _ = try await ledger.advanceToMigratePhase(migrationId: "m1")

            let leased = try await ledger.leaseUnpublishedBatches(migrationId: "m1", limit: 1_000)
            #expect(leased.map(\.sequence) == Array(0..<1_000).map(Int64.init))

            // Every batch offered again (the leases taken "until" 1 ms, "now" far ahead): the
            // statement's worst case, 1,000 of 1,500 leasable batches.
            let read = try await rowsRead(
                ledger, from: "ledger_batches", sql: Ledger.leaseStatement(.postgres),
                binds: [.text("m1"), .text(LedgerBatch.identityMethod), .int(1_000), .int(1), .int(Int64.max / 2)])
            #expect(read <= 3 * batches, "read \(read) batch rows to lease 1,000 of \(batches)")
        }
    }

    /// `mappings` created mappings on site-a (`key-1`, `key-2`, ...), with the statistics of the empty table.
    private func mappingsWithStaleStatistics(_ ledger: Ledger) async throws {
        try await staleStatistics(ledger, table: "ledger_mappings")
        try await rawExecute(
            ledger,
            """
            INSERT INTO ledger_mappings (site_id, server_user_key, cloud_account_id, account_type, outcome, flags,
                migration_id, batch_id, created_at_ms, updated_at_ms)
            SELECT 'site-a', 'key-' || g, 'acc-' || g, 'customer', 'created', 0, 'earlier', 'b', 0, 0
            FROM generate_series(1, \(Self.mappings)) AS g
            """)
    }

    /// The statistics of an empty table, kept while rows arrive (autovacuum off for the table).
    private func staleStatistics(_ ledger: Ledger, table: String) async throws {
        try await rawExecute(ledger, "ALTER TABLE \(table) SET (autovacuum_enabled = false)")
        try await rawExecute(ledger, "ANALYZE \(table)")
    }

    /// The rows PostgreSQL's executor read from `table` running `sql` (`EXPLAIN ANALYZE`, which
    /// runs it: each scan node's actual rows per loop times its loops).
    private func rowsRead(_ ledger: Ledger, from table: String, sql: String, binds: [SQLValue]) async throws -> Int {
        let plan = try await ledger.database.transaction("explain") { session in
            try await session.query("EXPLAIN (ANALYZE, COSTS OFF) " + sql, binds)
        }
        let lines = try plan.map { try $0.text(0) }
        let scans = lines.filter { $0.contains("Scan") && $0.contains(" on \(table) ") && $0.contains("actual") }
        #expect(!scans.isEmpty, "no scan of \(table) in the plan:\n\(lines.joined(separator: "\n"))")
        return scans.reduce(0) { total, line in
            total + (number(after: "rows=", in: line) ?? 0) * (number(after: "loops=", in: line) ?? 1)
        }
    }

    private func number(after label: String, in line: String) -> Int? {
        guard let start = line.range(of: label)?.upperBound else { return nil }
        return Int(line[start...].prefix { $0.isNumber })
    }
}
