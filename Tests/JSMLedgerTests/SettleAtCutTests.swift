import JSMDomain
import Testing

@testable import JSMLedger

@Suite("Ledger: the cut settles what an earlier migration mapped")
struct SettleAtCutTests {
    @Test(
        "identities whose whole email group is mapped on the site are already_migrated in no batch; the rest are batched",
        arguments: Backend.allCases)
    func settleAtCut(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            // An earlier migration on site-a maps a and b (one email) and c.
            let a = People.customer("a", "x@example.com")
            var b = People.customer("b", "X@example.com", directoryPosition: 2)
            b = ServerIdentity(
                userKey: b.userKey, userName: b.userName, displayName: b.displayName, rawEmail: b.rawEmail,
                directoryId: b.directoryId, directoryPosition: b.directoryPosition, isActive: false, kind: b.kind)
            let c = People.agent("c", "y@example.com")
            try await migrateFirst(ledger, [a, b, c])

            // The second migration adds d, who shares c's email but has no account yet.
            _ = try await ledger.createOrResumeMigration(definition("second", projects: [], batchSize: 10))
            let d = People.customer("d", "y@example.com")
            try await ledger.claimScope(migrationId: "second", identities: [a, b, c, d])
            guard case .advanced(let cut) = try await ledger.advanceToMigratePhase(migrationId: "second") else {
                Issue.record("the phase change did not happen")
                return
            }
            #expect(cut.settledAtCut == 2 && cut.identityCount == 2 && cut.batchCount == 1)
            let batch = try #require(try await ledger.batches(migrationId: "second").first)
            let content = try await ledger.loadIdentityBatch(migrationId: "second", batchId: batch.batchId)
            #expect(content.identities.map(\.userKey) == ["c", "d"])
            #expect(try await ledger.settledOutsideBatches(migrationId: "second").decidedByCategory == [.customer: 2])
            let totals = try await ledger.totals(migrationId: "second")
            #expect(totals.byCategory[.customer]?.alreadyMigrated == 2)
            #expect(totals.byCategory[.customer]?.pending == 1 && totals.byCategory[.licensedUser]?.pending == 1)
            // b is disabled on the server: the flag travels with its outcome, as the rules set it.
            let attention = try await ledger.attentionRecords(migrationId: "second")
            #expect(attention.map(\.userKey) == ["b"] && attention.first?.flags == .disabled)
        }
    }

    @Test(
        "the cut returns an email group to the batches when another migration's claims lie among its rows",
        arguments: Backend.allCases)
    func settleAtCutAmongOtherClaims(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            let a = People.customer("a", "x@example.com")
            let c = People.agent("c", "y@example.com")
            try await migrateFirst(ledger, [a, c])
            // Two later migrations claim in turns, so that each one's rows lie among the other's
            // (SQLite reads the settled rows between a migration's first and last row). Only the
            // third has d, who shares c's email and has no account yet.
            _ = try await ledger.createOrResumeMigration(definition("second", projects: [], batchSize: 10))
            _ = try await ledger.createOrResumeMigration(definition("third", projects: [], batchSize: 10))
            let d = People.customer("d", "y@example.com")
            try await ledger.claimScope(migrationId: "third", identities: [a])
            try await ledger.claimScope(migrationId: "second", identities: [a])
            try await ledger.claimScope(migrationId: "second", identities: [c])
            try await ledger.claimScope(migrationId: "third", identities: [c])
            try await ledger.claimScope(migrationId: "second", identities: [People.agent("e", "e@example.com")])
            try await ledger.claimScope(migrationId: "third", identities: [d])

            guard case .advanced(let third) = try await ledger.advanceToMigratePhase(migrationId: "third") else {
                Issue.record("the third migration did not advance")
                return
            }
            #expect(third.settledAtCut == 1 && third.identityCount == 2 && third.batchCount == 1)
            let batch = try #require(try await ledger.batches(migrationId: "third").first)
            let content = try await ledger.loadIdentityBatch(migrationId: "third", batchId: batch.batchId)
            #expect(content.identities.map(\.userKey) == ["c", "d"])

            // The second migration's c, between the third's rows, keeps its settlement.
            guard case .advanced(let second) = try await ledger.advanceToMigratePhase(migrationId: "second") else {
                Issue.record("the second migration did not advance")
                return
            }
            #expect(second.settledAtCut == 2 && second.identityCount == 1 && second.batchCount == 1)
            let secondBatch = try #require(try await ledger.batches(migrationId: "second").first)
            let secondContent = try await ledger.loadIdentityBatch(
                migrationId: "second", batchId: secondBatch.batchId)
            #expect(secondContent.identities.map(\.userKey) == ["e"])
            #expect(
                try await ledger.settledOutsideBatches(migrationId: "second").decidedByCategory == [
                    .customer: 1, .licensedUser: 1,
                ])
        }
    }

    @Test(
        "the rows outside batches, counted once after the cut, and a recount of the batched rows give the whole recount",
        arguments: Backend.allCases)
    func totalsFromRowsOutsideBatches(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            let a = People.customer("a", "x@example.com")
            let c = People.agent("c", "y@example.com")
            try await migrateFirst(ledger, [a, c])
            // The first migration's rows are all batched: nothing to count outside them.
            let first = try await ledger.settledOutsideBatches(migrationId: "first")
            #expect(first.isEmpty && first.decidedWithoutMapping == 0)
            #expect(
                try await ledger.totals(migrationId: "first", outsideBatches: first)
                    == ledger.totals(migrationId: "first"))

            _ = try await ledger.createOrResumeMigration(definition("second", projects: [], batchSize: 10))
            let d = People.customer("d", "z@example.com")
            try await ledger.claimScope(migrationId: "second", identities: [a, c, d])
            // Before the cut every row is outside the batches and none is final.
            let early = await #expect(throws: LedgerError.self) {
                try await ledger.settledOutsideBatches(migrationId: "second")
            }
            #expect(early?.code == .invalidRequest)
            _ = try await ledger.advanceToMigratePhase(migrationId: "second")

            let part = try await ledger.settledOutsideBatches(migrationId: "second")
            #expect(part.byCategory[.customer]?.alreadyMigrated == 1 && part.byCategory[.customer]?.inScope == 1)
            #expect(part.byCategory[.licensedUser]?.alreadyMigrated == 1 && part.decidedWithoutMapping == 0)
            // d waits in its batch, then is created: the batched rows are read again each time.
            let whole = try await ledger.totals(migrationId: "second")
            #expect(whole.byCategory[.customer]?.pending == 1)
            #expect(try await ledger.totals(migrationId: "second", outsideBatches: part) == whole)
            try await completeAllBatches(ledger, "second")
            let done = try await ledger.totals(migrationId: "second")
            #expect(done.byCategory[.customer]?.created == 1 && done.overall.pending == 0)
            #expect(try await ledger.totals(migrationId: "second", outsideBatches: part) == done)
            #expect(try await ledger.settledOutsideBatches(migrationId: "second") == part)

            // A settled row whose mapping row went missing is named by the part's own probe.
            try await ledger.database.transaction("break a mapping") { session in
                try await session.execute("DELETE FROM ledger_mappings WHERE server_user_key = 'a'", [])
            }
            let broken = try await ledger.settledOutsideBatches(migrationId: "second")
            #expect(broken.decidedWithoutMapping == 1)
            #expect(try await ledger.totals(migrationId: "second", outsideBatches: broken).decidedWithoutMapping == 1)
            #expect(try await ledger.totals(migrationId: "second").decidedWithoutMapping == 1)

            let foreign = await #expect(throws: LedgerError.self) {
                try await ledger.totals(migrationId: "first", outsideBatches: part)
            }
            #expect(foreign?.code == .invalidRequest)
        }
    }

    /// Migration "first" claims `identities` and every batch completes with a created account,
    /// so that later migrations on the site find them mapped.
    private func migrateFirst(_ ledger: Ledger, _ identities: [ServerIdentity]) async throws {
        _ = try await ledger.createOrResumeMigration(definition("first", projects: []))
        try await ledger.claimScope(migrationId: "first", identities: identities)
        _ = try await ledger.advanceToMigratePhase(migrationId: "first")
        for batch in try await ledger.batches(migrationId: "first") {
            let content = try await ledger.loadIdentityBatch(migrationId: "first", batchId: batch.batchId)
            _ = try await ledger.completeBatch(
                migrationId: "first", batchId: batch.batchId, mappings: content.identities.map(createdMapping),
                result: [1])
        }
    }
}
