import JSMDomain
import Testing

@testable import JSMLedger

@Suite("Ledger: batch publication and migration states")
struct PublishingTests {
    /// Migration `m1` with 23 customers claimed and cut into batches of `batchSize`.
    private func cutMigration(_ ledger: Ledger, batchSize: Int) async throws {
        _ = try await ledger.createOrResumeMigration(definition("m1", projects: [], batchSize: batchSize))
        let people = (0..<23).map { People.customer("c\($0)", "c\($0)@example.com") }
        try await ledger.claimScope(migrationId: "m1", identities: people)
        _ = try await ledger.advanceToMigratePhase(migrationId: "m1")
    }

    @Test(
        "only unconfirmed pending batches are offered for publishing, and a requeued one can be offered again",
        arguments: Backend.allCases)
    func unpublishedBatches(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            try await cutMigration(ledger, batchSize: 5)
            let all = try await ledger.unpublishedBatches(migrationId: "m1", limit: 100)
            #expect(all.map(\.sequence) == [0, 1, 2, 3, 4])
            try await ledger.markPublished(migrationId: "m1", batchIds: all.prefix(3).map(\.batchId))
            #expect(try await ledger.unpublishedBatches(migrationId: "m1").map(\.sequence) == [3, 4])
            #expect(try await ledger.unpublishedBatches(migrationId: "m1", limit: 1).map(\.sequence) == [3])

            // A done batch is never offered again, even when its publication is forgotten.
            let first = try await ledger.loadIdentityBatch(migrationId: "m1", batchId: all[0].batchId)
            _ = try await ledger.completeBatch(
                migrationId: "m1", batchId: all[0].batchId, mappings: first.identities.map(createdMapping), result: [1])
            #expect(try await ledger.markUnpublished(migrationId: "m1", batchId: all[0].batchId))
            try await ledger.parkBatch(migrationId: "m1", batchId: all[1].batchId, error: "x")
            try await ledger.requeueBatch(migrationId: "m1", batchId: all[1].batchId)
            #expect(try await ledger.markUnpublished(migrationId: "m1", batchId: all[1].batchId))
            #expect(try await ledger.unpublishedBatches(migrationId: "m1").map(\.sequence) == [1, 3, 4])
            #expect(try await ledger.markUnpublished(migrationId: "m1", batchId: "no-such-batch") == false)

            let states = try await ledger.batchStateCounts(migrationId: "m1")
            #expect(states == [.done: 1, .pending: 4, .parked: 0, .discarded: 0])
        }
    }

    @Test(
        "a leased batch is offered to no other publisher until its lease runs out, and never once confirmed",
        arguments: Backend.allCases)
    func leases(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            try await cutMigration(ledger, batchSize: 5)
            let first = try await ledger.leaseUnpublishedBatches(migrationId: "m1", limit: 2)
            #expect(first.map(\.sequence) == [0, 1])
            // A second publisher meanwhile gets the others, never the leased ones.
            let second = try await ledger.leaseUnpublishedBatches(migrationId: "m1", limit: 10)
            #expect(second.map(\.sequence) == [2, 3, 4])
            #expect(try await ledger.leaseUnpublishedBatches(migrationId: "m1").isEmpty)
            try await ledger.markPublished(migrationId: "m1", batchIds: first.map(\.batchId) + [second[0].batchId])
            // Once the lease has run out, the unconfirmed ones are offered again; the confirmed never.
            let later = Ledger(database: ledger.database, now: { Ledger.wallClockMilliseconds() + 61_000 })
            #expect(try await later.leaseUnpublishedBatches(migrationId: "m1").map(\.sequence) == [3, 4])
            // An operator's retry forgets the publication and the lease.
            #expect(try await ledger.markUnpublished(migrationId: "m1", batchId: first[0].batchId))
            #expect(try await ledger.leaseUnpublishedBatches(migrationId: "m1").map(\.sequence) == [0])
        }
    }

    @Test("publishers leasing at the same time never get the same batch", arguments: Backend.allCases)
    func concurrentLeases(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            try await cutMigration(ledger, batchSize: 1)
            let leased = try await withThrowingTaskGroup(of: [String].self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        try await ledger.leaseUnpublishedBatches(migrationId: "m1", limit: 5).map(\.batchId)
                    }
                }
                var all: [String] = []
                for try await ids in group { all += ids }
                return all
            }
            #expect(Set(leased).count == leased.count, "a batch was leased twice")
            #expect(leased.count >= 5)
            let batches = Set(try await ledger.batches(migrationId: "m1").map(\.batchId))
            #expect(batches.count == 23 && Set(leased).isSubset(of: batches))
        }
    }

    @Test("migrations are listed by state, oldest first", arguments: Backend.allCases)
    func migrationsByState(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            for id in ["a", "b", "c"] { _ = try await ledger.createOrResumeMigration(definition(id)) }
            try await ledger.setMigrationState("b", to: .running, from: [.saved])
            try await ledger.setMigrationState("c", to: .running, from: [.saved])
            #expect(try await ledger.migrationIds(inStates: [.running]) == ["b", "c"])
            #expect(try await ledger.migrationIds(inStates: [.saved, .running]).count == 3)
            #expect(try await ledger.migrationIds(inStates: []).isEmpty)
        }
    }
}
