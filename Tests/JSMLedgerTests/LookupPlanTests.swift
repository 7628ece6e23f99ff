import Foundation
import JSMDomain
import Testing

@testable import JSMLedger

/// A worker looks up every batch's keys in the site's mappings. On PostgreSQL, with the statistics
/// of a table analysed while it was nearly empty (a ledger's first minutes), a plain join read every
/// mapping of the site for each batch; the lookup must read only the rows of the keys it asks about.
/// (The membership lookup, `recordedMemberships`, joins the group mappings first and probes the
/// membership index already with such statistics: measured, not changed.)
@Suite("Ledger on PostgreSQL: a batch's mapping lookup reads only its keys' rows, whatever the statistics say")
struct LookupPlanTests {
    static let mappings = 20_000

    @Test("priorMappings finds its keys and reads no other mapping")
    func priorMappingsReadsOnlyItsKeys() async throws {
        try await withTestLedger(.postgres) { ledger in
            try await staleStatistics(ledger, table: "ledger_mappings")
            try await rawExecute(
                ledger,
                """
                INSERT INTO ledger_mappings (site_id, server_user_key, cloud_account_id, account_type, outcome, flags,
                    migration_id, batch_id, created_at_ms, updated_at_ms)
                SELECT 'site-a', 'key-' || g, 'acc-' || g, 'customer', 'created', 0, 'earlier', 'b', 0, 0
                FROM generate_series(1, \(Self.mappings)) AS g
                """)
            let known = (1...250).map { "key-\($0 * 80)" }
            let keys = known + (1...250).map { "unknown-\($0)" }

            let found = try await ledger.priorMappings(siteId: "site-a", userKeys: keys)
            #expect(found.count == known.count)
            #expect(found["key-80"] == PriorMapping(accountId: "acc-80", accountType: .customer))
            #expect(found["unknown-1"] == nil)

            var rows = BulkRows([("user_key", .text)])
            for key in keys { rows.append([.text(key)]) }
            let read = try await rowsRead(
                ledger, from: "ledger_mappings", rows: rows, select: Ledger.priorMappingsSelect(.postgres))
            #expect(read <= keys.count, "read \(read) of \(Self.mappings) mappings to look up \(keys.count) keys")
        }
    }

    /// The statistics of an empty table, kept while rows arrive (autovacuum off for the table).
    private func staleStatistics(_ ledger: Ledger, table: String) async throws {
        try await rawExecute(ledger, "ALTER TABLE \(table) SET (autovacuum_enabled = false)")
        try await rawExecute(ledger, "ANALYZE \(table)")
    }

    /// The rows PostgreSQL's executor read from `table` running the lookup (`EXPLAIN ANALYZE`:
    /// each scan node's actual rows per loop times its loops).
    private func rowsRead(_ ledger: Ledger, from table: String, rows: BulkRows, select: String) async throws -> Int {
        let (with, binds) = SQLDialect.postgres.withRows(rows, firstParameter: 2)
        let plan = try await ledger.database.transaction("explain") { session in
            try await session.query("EXPLAIN (ANALYZE, COSTS OFF) " + with + select, [.text("site-a")] + binds)
        }
        let lines = try plan.map { try $0.text(0) }
        let scans = lines.filter { $0.contains(" on \(table) ") && $0.contains("actual") }
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
