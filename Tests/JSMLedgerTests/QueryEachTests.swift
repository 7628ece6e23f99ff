import Testing

@testable import JSMLedger

@Suite("Ledger sessions: several statements in one call")
struct QueryEachTests {
    @Test(
        "statements run in order with the leading values then their own, each answering its rows",
        arguments: Backend.allCases)
    func inOrder(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            let rows = try await ledger.database.transaction("queryEach") { session in
                // A temporary table of the test's own: the ledger's tables would need a migration
                // and its rows first.
                try await session.execute(
                    "CREATE TEMPORARY TABLE each_probe (tag TEXT NOT NULL, n BIGINT NOT NULL)", [])
                let insert =
                    "INSERT INTO each_probe (tag, n) VALUES ($1, CAST($2 AS BIGINT) + CAST($3 AS BIGINT)) RETURNING n"
                let answers = try await session.queryEach(
                    [
                        BoundStatement(sql: insert, binds: [.int(1)]),
                        BoundStatement(sql: insert, binds: [.int(2)]),
                        // Sees both rows above: the statements ran one after the other, in order.
                        BoundStatement(
                            sql:
                                "SELECT n FROM each_probe WHERE tag = $1 AND n > CAST($2 AS BIGINT) + CAST($3 AS BIGINT) - 3 ORDER BY n",
                            binds: [.int(0)]),
                    ], leading: [.text("t"), .int(10)])
                return try answers.map { try $0.map { try $0.int(0) } }
            }
            #expect(rows == [[11], [12], [11, 12]])
        }
    }

    @Test("a failing statement fails the call, and the transaction writes nothing", arguments: Backend.allCases)
    func stopsAtFailure(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            _ = try await ledger.createOrResumeMigration(definition("m", projects: []))
            let insert = """
                INSERT INTO ledger_scope (migration_id, user_key, identity_class, identity_kind, user_name,
                    display_name, normalized_email, active, claimed_at_ms)
                VALUES ($1, $2, 'customer', 'customer', 'u', 'U', '', 1, 0)
                """
            await #expect(throws: LedgerError.self) {
                try await ledger.database.transaction("queryEach") { session in
                    _ = try await session.queryEach(
                        [
                            BoundStatement(sql: insert, binds: [.text("k1")]),
                            // The same key again: the primary key refuses it.
                            BoundStatement(sql: insert, binds: [.text("k1")]),
                            BoundStatement(sql: insert, binds: [.text("k3")]),
                        ], leading: [.text("m")])
                }
            }
            let count = try await ledger.database.transaction("count", readOnly: true) { session in
                try await session.first("SELECT COUNT(*) FROM ledger_scope WHERE migration_id = $1", [.text("m")])?
                    .int(0)
            }
            #expect(count == 0)
        }
    }
}
