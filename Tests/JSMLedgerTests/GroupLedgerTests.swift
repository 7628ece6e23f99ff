import JSMDomain
import Testing

@testable import JSMLedger

@Suite("Ledger: groups and memberships")
struct GroupLedgerTests {
    private func groupsDefinition(_ id: String, site: String = "site-a") -> MigrationDefinition {
        MigrationDefinition(
            id: id, siteId: site, projects: [], scope: ScopeOptions(customers: .none, users: .all), groups: true,
            groupMembership: true, batchSize: 2, createdBy: "tests")
    }

    /// Three agents in scope; `team` and `ops` have in-scope members, `ghost` only an out-of-scope one.
    private func prepare(_ ledger: Ledger, _ id: String) async throws {
        _ = try await ledger.createOrResumeMigration(groupsDefinition(id))
        try await ledger.claimScope(
            migrationId: id, identities: ["a", "b", "c"].map { People.agent($0, "\($0)@example.com") })
        let groups = [
            GroupCandidate(lowerName: "team", name: "Team", directoryId: 1),
            GroupCandidate(lowerName: "ops", name: "Ops", directoryId: 1),
            GroupCandidate(lowerName: "ghost", name: "Ghost", directoryId: 1),
        ]
        let pairs = [("team", "a"), ("team", "b"), ("team", "c"), ("ops", "a"), ("ghost", "outsider")]
            .map { MembershipCandidate(lowerName: $0.0, userKey: $0.1) }
        try await ledger.recordGroupCandidates(migrationId: id, groups: groups, memberships: pairs)
        // Recording again changes nothing.
        try await ledger.recordGroupCandidates(migrationId: id, groups: groups, memberships: pairs)
    }

    @Test(
        "the cut keeps groups with an in-scope member and their pairs, in batches by name; closed afterwards",
        arguments: Backend.allCases)
    func cut(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            try await prepare(ledger, "g1")
            _ = try await ledger.advanceToMigratePhase(migrationId: "g1")
            let groupBatches = try await ledger.batches(migrationId: "g1", method: LedgerBatch.groupMethod)
            #expect(groupBatches.map(\.identityCount) == [2])
            let content = try await ledger.loadGroupBatch(migrationId: "g1", batchId: groupBatches[0].batchId)
            #expect(content.groups.map(\.lowerName) == ["ops", "team"])
            let membershipBatches = try await ledger.batches(migrationId: "g1", method: LedgerBatch.membershipMethod)
            #expect(membershipBatches.map(\.identityCount) == [2, 2])
            let first = try await ledger.loadMembershipBatch(
                migrationId: "g1", batchId: membershipBatches[0].batchId)
            #expect(
                first.memberships == [.init(lowerName: "ops", userKey: "a"), .init(lowerName: "team", userKey: "a")])
            let totals = try await ledger.groupTotals(migrationId: "g1")
            #expect(totals.groups.inScope == 2 && totals.memberships.inScope == 4 && !totals.invariantHolds)
            #expect(
                try await ledger.pendingBatchCount(
                    migrationId: "g1", methods: [LedgerBatch.identityMethod, LedgerBatch.groupMethod]) == 3)
            await #expect(throws: LedgerError.self) {
                try await ledger.recordGroupCandidates(
                    migrationId: "g1", groups: [], memberships: [.init(lowerName: "team", userKey: "z")])
            }
        }
    }

    @Test(
        "group and membership completions are idempotent, and a later migration finds them already migrated",
        arguments: Backend.allCases)
    func completions(backend: Backend) async throws {
        try await withTestLedger(backend) { ledger in
            try await prepare(ledger, "g1")
            _ = try await ledger.advanceToMigratePhase(migrationId: "g1")
            let groupBatch = try #require(
                try await ledger.batches(migrationId: "g1", method: LedgerBatch.groupMethod).first)
            let completions = [
                GroupCompletion(
                    lowerName: "ops", outcome: .created, cloudGroupId: "G-ops", escalationRisk: false, detail: nil),
                GroupCompletion(
                    lowerName: "team", outcome: .reused, cloudGroupId: "G-team", escalationRisk: true, detail: "risk"),
            ]
            let done = try await ledger.completeGroupBatch(
                migrationId: "g1", batchId: groupBatch.batchId, groups: completions, result: [7])
            #expect(!done.replayed)
            let again = try await ledger.completeGroupBatch(
                migrationId: "g1", batchId: groupBatch.batchId, groups: [], result: [8])
            #expect(again.replayed && again.result == [7])

            // A membership on the site needs its cloud group and account: nothing is written otherwise.
            let membershipBatches = try await ledger.batches(migrationId: "g1", method: LedgerBatch.membershipMethod)
            let pairs = try await ledger.loadMembershipBatch(migrationId: "g1", batchId: membershipBatches[0].batchId)
                .memberships
            await #expect(throws: LedgerError.self) {
                try await ledger.completeMembershipBatch(
                    migrationId: "g1", batchId: membershipBatches[0].batchId,
                    memberships: pairs.map {
                        MembershipCompletion(
                            membership: $0, outcome: .added, cloudGroupId: nil, cloudAccountId: nil, detail: nil)
                    }, result: [1])
            }
            let added = pairs.map {
                MembershipCompletion(
                    membership: $0, outcome: .added, cloudGroupId: "G-\($0.lowerName)",
                    cloudAccountId: "acc-\($0.userKey)",
                    detail: nil)
            }
            #expect(
                try await !ledger.completeMembershipBatch(
                    migrationId: "g1", batchId: membershipBatches[0].batchId, memberships: added, result: [2]
                ).replayed)
            #expect(
                try await ledger.completeMembershipBatch(
                    migrationId: "g1", batchId: membershipBatches[0].batchId, memberships: added, result: [3]
                ).replayed)
            let totals = try await ledger.groupTotals(migrationId: "g1")
            #expect(totals.groups.created == 1 && totals.groups.reused == 1 && totals.groups.escalationRisks == 1)
            #expect(totals.groups.balances && totals.memberships.added == 2 && !totals.memberships.balances)
            let attention = try await ledger.groupAttentionRecords(migrationId: "g1")
            #expect(attention.map(\.key) == ["Team"] && attention.first?.membersAdded == 1)

            // The next migration on the same site: both groups and the two added pairs are known.
            try await prepare(ledger, "g2")
            #expect(
                try await ledger.priorGroupMappings(siteId: "site-a", lowerNames: ["ops", "team", "ghost"])
                    == ["ops": "G-ops", "team": "G-team"])
            let targets = try await ledger.membershipTargets(siteId: "site-a", memberships: pairs)
            #expect(targets.alreadyMigrated == Set(pairs) && targets.groups.count == 2)
        }
    }
}
