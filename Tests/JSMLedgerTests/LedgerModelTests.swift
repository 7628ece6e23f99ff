import JSMDomain
import Testing

@testable import JSMLedger

/// The ledger's pieces that need no database.
@Suite("Ledger model")
struct LedgerModelTests {
    @Test("a worker's decision becomes the mapping it completes the batch with")
    func mappingFromDecision() {
        let ann = People.customer("ann", "Ann@Example.com")
        let created = MigrationRules.decide(ann, existingAccounts: [], priorMapping: nil, policies: MigrationPolicies())
        let mapping = IdentityMapping(
            IdentityDecision(identity: ann, decision: created),
            account: ExistingCloudAccount(accountId: "a-1", type: .customer))
        #expect(mapping == IdentityMapping(userKey: "ann", outcome: .created, accountId: "a-1", accountType: .customer))

        let bad = People.customer("bad", "not an email")
        let rejected = MigrationRules.decide(
            bad, existingAccounts: [], priorMapping: nil, policies: MigrationPolicies())
        let rejectedMapping = IdentityMapping(IdentityDecision(identity: bad, decision: rejected), account: nil)
        #expect(rejectedMapping.outcome == .rejected)
        #expect(rejectedMapping.accountId == nil)
        #expect(rejectedMapping.reason == DecisionReason.malformedEmail.rawValue)
    }

    @Test("only an unreachable database and a conflicting transaction are worth retrying")
    func retriableCodes() {
        let retriable = LedgerError.Code.allCases.filter { LedgerError($0, operation: "op", "m").isRetriable }
        #expect(retriable == [.unavailable, .transactionConflict])
        let error = LedgerError(.unavailable, operation: "completeBatch", "no connection")
        #expect(error.description == "ledger completeBatch failed (unavailable, retriable): no connection")
    }

    @Test("SQLite binds $n parameters as ?n, PostgreSQL keeps them")
    func placeholders() {
        let sql = "SELECT $1, $12 FROM t WHERE a = $2 AND b = '$'"
        #expect(SQLDialect.sqlite.statement(sql) == "SELECT ?1, ?12 FROM t WHERE a = ?2 AND b = '$'")
        #expect(SQLDialect.postgres.statement(sql) == sql)
    }

    @Test("bulk rows become one UNNEST on PostgreSQL and one VALUES list on SQLite")
    func bulkRows() {
        var rows = BulkRows([("key", .text), ("email", .optionalText)])
        rows.append([.text("a"), .null])
        rows.append([.text("b"), .text("b@example.com")])
        let postgres = SQLDialect.postgres.withRows(rows, firstParameter: 3)
        #expect(postgres.binds.count == 3)
        #expect(postgres.binds[0] == .textArray(["a", "b"]))
        #expect(postgres.binds[2] == .boolArray([true, false]))
        #expect(postgres.sql.contains("UNNEST($3::text[], $4::text[], $5::bool[])"))
        let sqlite = SQLDialect.sqlite.withRows(rows, firstParameter: 3)
        #expect(sqlite.sql == "WITH u(key, email) AS (VALUES (?3, ?4), (?5, ?6))")
        #expect(sqlite.binds == [.text("a"), .null, .text("b"), .text("b@example.com")])
        // The same shape again is the same text (built once), and a statement's $N become ?N.
        #expect(SQLDialect.sqlite.withRows(rows, firstParameter: 3).sql == sqlite.sql)
        #expect(SQLDialect.sqlite.statement("SELECT $1, '$', $12 FROM t$") == "SELECT ?1, '$', ?12 FROM t$")
    }
}
