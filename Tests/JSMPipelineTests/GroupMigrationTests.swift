import AMQP
import Foundation
import JSMDomain
import JSMLedger
import JSMLocalRun
import JSMPipeline
import JSMSource
import Testing

extension EndToEndTests {
    @Test(
        "groups and memberships: nested groups resolved, a same-name cloud group reused and reported, a re-run settled",
        arguments: Backend.allCases)
    func groupsAndMemberships(backend: Backend) async throws {
        try await withLedgerLocation(backend) { ledgerLocation in
            try await groupsAndMemberships(ledger: ledgerLocation)
        }
    }

    private func groupsAndMemberships(ledger: LedgerLocation?) async throws {
        try await EndToEnd.withWorld(ledger: ledger) { world, connection in
            // A cloud group with the name of a server group (other case): the migration must reuse it.
            let existing = try await world.siteLocation.withSite { try await $0.createGroup(named: "ALL-STAFF") }
            #expect(!existing.group.groupId.isEmpty)
            let projects = try await world.source.withSource { try await $0.projects().map(\.key) }
            var request = world.request("groups", projects: projects, batchSize: 100)
            request.groups = true
            request.groupMembership = true
            let (_, verdict) = try await world.migrate(request, connection: connection)
            #expect(verdict.reconciled)
            let groups = verdict.groupTotals.groups
            let members = verdict.groupTotals.memberships
            #expect(groups.inScope > 1 && groups.balances)
            #expect(groups.reused == 1 && groups.escalationRisks == 1)
            #expect(groups.created == groups.inScope - 1 && groups.rejected == 0)
            #expect(members.inScope > 0 && members.balances && members.added > 0 && members.skipped > 0)

            // The ledger's pairs are exactly the ones a recount from the raw source rows finds.
            let expected = try await expectedMemberships(world, migrationId: "groups")
            let records = try await world.ledger.membershipRecords(migrationId: "groups")
            #expect(Set(records.map(\.membership)) == expected)
            #expect(records.allSatisfy { $0.outcome != nil })
            let groupRecords = try await world.ledger.groupRecords(migrationId: "groups")
            #expect(Set(groupRecords.map(\.lowerName)) == Set(expected.map(\.lowerName)))
            #expect(groupRecords.first { $0.lowerName == "all-staff" }?.cloudGroupId == existing.group.groupId)

            // Each outcome agrees with the member's account on the site.
            let mappings = try await EndToEnd.mappings(world.ledger, siteId: world.siteLocation.siteId)
            for record in records {
                let mapping = mappings[record.membership.userKey]
                let hasAccount = mapping?.outcome == .created || mapping?.outcome == .linked
                switch record.outcome {
                case .added, .alreadyMember: #expect(hasAccount && mapping?.accountType == .atlassian)
                case .skippedCustomerAccount: #expect(hasAccount && mapping?.accountType == .customer)
                case .skippedNoAccount: #expect(!hasAccount)
                default:
                    Issue.record("unexpected outcome \(String(describing: record.outcome)) for \(record.membership)")
                }
            }
            // The site holds what the ledger says it added (the pre-existing group had no members).
            let site = try await EndToEnd.siteCounts(world.site)
            #expect(site.groups == groups.created + 1)
            #expect(site.groupMemberships == members.added)

            // The requires-attention CSV names the reused group with its risk.
            let csvPath = world.directory + "/attention.csv"
            _ = try await ReportExports.writeAttention(ledger: world.ledger, migrationId: "groups", to: csvPath)
            let csv = try String(contentsOfFile: csvPath, encoding: .utf8)
            #expect(csv.contains("\nall-staff,group,reused,permission_escalation_risk,"))
            let report = try await MigrationReport.load(from: world.ledger, migrationId: "groups")
            #expect(report.groupTotals == verdict.groupTotals && report.invariantHolds)
            let verification = try await world.source.withSource { jira in
                try await MigrationVerification.verify(
                    ledger: world.ledger, migrationId: "groups", source: jira, site: world.siteLocation)
            }
            #expect(verification.passed, "\(verification.rendered())")
            let groupChecks = verification.checks.filter { $0.name.contains("group") || $0.name.contains("membership") }
            #expect(groupChecks.count == 4 && groupChecks.allSatisfy { $0.status == .ok })

            // A second migration of the same scope finds every group and membership already migrated,
            // and every identity too: the site receives only the lookups that its groups still exist,
            // at most one per 50 groups of each group batch.
            let requestsBefore = try await EndToEnd.siteRequests(world.site)
            request.migrationId = "groups-again"
            let (_, again) = try await world.migrate(request, connection: connection)
            #expect(again.reconciled)
            #expect(again.groupTotals.groups.alreadyMigrated == groups.inScope)
            #expect(again.groupTotals.memberships.alreadyMigrated == members.added + members.alreadyMember)
            #expect(again.groupTotals.memberships.skipped == members.skipped)
            let groupBatches = try await world.ledger.batchStateCounts(
                migrationId: "groups-again", method: LedgerBatch.groupMethod
            ).values.reduce(0, +)
            let lookups = try await EndToEnd.siteRequests(world.site) - requestsBefore
            #expect(groupBatches > 0 && (groupBatches...(groups.inScope / 50 + groupBatches)).contains(lookups))
        }
    }

    /// The (group, member) pairs a migration must hold, recounted from the raw group tables: each
    /// in-scope customer or licensed user's direct groups in its own directory, with every active
    /// group they are nested in (cloud groups do not nest).
    private func expectedMemberships(_ world: LocalWorld, migrationId: String) async throws -> Set<MembershipCandidate>
    {
        let scope = try await EndToEnd.scope(world.ledger, migrationId).filter {
            $0.kind == .customer || $0.kind == .licensedUser
        }
        return try await world.source.withSource { jira in
            var groups: [Int64: GroupRow] = [:]
            for try await group in jira.groups() { groups[group.id] = group }
            var parents: [Int64: [Int64]] = [:]
            var direct: [String: [(group: Int64, directory: Int64)]] = [:]
            for try await membership in jira.memberships() {
                let row = membership.row
                switch row.type {
                case .groupGroup:
                    guard let parent = groups[row.parentId], let child = groups[row.childId],
                        parent.directoryId == child.directoryId
                    else { continue }
                    parents[row.childId, default: []].append(row.parentId)
                case .groupUser:
                    guard let key = membership.userKey, let group = groups[row.parentId] else { continue }
                    direct[key, default: []].append((row.parentId, group.directoryId))
                }
            }
            var expected = Set<MembershipCandidate>()
            for identity in scope {
                var reached = Set<Int64>()
                var frontier = (direct[identity.userKey] ?? [])
                    .filter { $0.directory == identity.directoryId && groups[$0.group]?.isActive == true }.map(\.group)
                for _ in 0..<100 where !frontier.isEmpty {  // nesting is shallow; a cycle ends when nothing is new
                    frontier = frontier.filter { reached.insert($0).inserted }
                    frontier = frontier.flatMap { parents[$0] ?? [] }.filter { groups[$0]?.isActive == true }
                }
                for id in reached {
                    if let group = groups[id] {
                        expected.insert(MembershipCandidate(lowerName: group.lowerName, userKey: identity.userKey))
                    }
                }
            }
            return expected
        }
    }
}
