import AsyncHTTPClient
import Foundation
import JSMDomain
import JSMLedger
import JSMLocalRun
import JSMPipeline
import Testing

extension EndToEndTests {
    @Test(
        "a cloud group deleted since an earlier migration is created again with its members, as the dry run predicts",
        arguments: Backend.allCases)
    func deletedCloudGroup(backend: Backend) async throws {
        try await withLedgerLocation(backend) { ledgerLocation in
            try await deletedCloudGroup(ledger: ledgerLocation)
        }
    }

    private func deletedCloudGroup(ledger: LedgerLocation?) async throws {
        try await EndToEnd.withWorld(ledger: ledger) { world, connection in
            let projects = try await world.source.withSource { try await $0.projects().map(\.key) }
            var request = world.request("deleted-first", projects: projects, batchSize: 100)
            request.groups = true
            request.groupMembership = true
            let (_, first) = try await world.migrate(request, connection: connection)
            #expect(first.reconciled)
            let groups = first.groupTotals.groups
            let members = first.groupTotals.memberships
            #expect(groups.created == groups.inScope && members.added > 0)

            // The site's administrator deletes the group with the most members the migration added.
            let onSite = try await world.ledger.membershipRecords(migrationId: "deleted-first")
                .filter { $0.outcome == .added || $0.outcome == .alreadyMember }
            let byGroup = Dictionary(grouping: onSite, by: \.membership.lowerName)
            let (victim, pairs) = try #require(byGroup.max { ($0.value.count, $0.key) < ($1.value.count, $1.key) })
            let records = try await world.ledger.groupRecords(migrationId: "deleted-first")
            let deletedId = try #require(records.first { $0.lowerName == victim }?.cloudGroupId)
            let deletedMembers = try await world.siteLocation.withSite {
                try await $0.memberAccountIds(ofGroupId: deletedId)
            }
            #expect((deletedMembers?.count ?? 0) > 1, "the deleted group must have had members")
            try await EndToEnd.deleteSiteGroup(world.site, groupId: deletedId)

            // The dry run predicts the group created again and its pairs added again.
            request.migrationId = "deleted-second"
            let predicted = try #require(try await dryRun(world, request).groups)
            #expect(predicted.groups.alreadyMigrated == groups.inScope - 1 && predicted.groups.created == 1)
            #expect(predicted.memberships.alreadyMigrated == members.added + members.alreadyMember - pairs.count)
            #expect(predicted.memberships.added + predicted.memberships.alreadyMember == pairs.count)

            let (_, second) = try await world.migrate(request, connection: connection)
            #expect(second.reconciled)
            #expect(second.groupTotals == predicted)
            let recreated = try await world.ledger.groupRecords(migrationId: "deleted-second")
                .first { $0.lowerName == victim }
            #expect(recreated?.outcome == .created)
            let newId = try #require(recreated?.cloudGroupId)
            #expect(newId != deletedId)
            let newMembers = try await world.siteLocation.withSite { try await $0.memberAccountIds(ofGroupId: newId) }
            #expect(newMembers == deletedMembers, "the group created again has the deleted group's members")
            let verification = try await world.source.withSource { jira in
                try await MigrationVerification.verify(
                    ledger: world.ledger, migrationId: "deleted-second", source: jira, site: world.siteLocation)
            }
            #expect(verification.passed, "\(verification.rendered())")
            // The requires-attention CSV lists it: the new group lacks the deleted one's permissions.
            let csvPath = world.directory + "/attention-deleted.csv"
            _ = try await ReportExports.writeAttention(ledger: world.ledger, migrationId: "deleted-second", to: csvPath)
            let attention = CSV.parse(try String(contentsOfFile: csvPath, encoding: .utf8))
            let row = try #require(attention.first { $0.first?.lowercased() == victim && $0[1] == "group" })
            #expect(Array(row[2...3]) == ["created", "recreated"] && row[5] == newId, "\(row)")
            #expect(row[4].contains(deletedId), "\(row)")
            #expect(row[4].hasSuffix("members added: \(second.groupTotals.memberships.added)"), "\(row)")
            #expect(attention.filter { $0[1] == "group" }.count == 1, "only the re-created group: \(attention)")

            // The ledger now maps the name to the new group: a third run has nothing to do again.
            request.migrationId = "deleted-third"
            let (_, third) = try await world.migrate(request, connection: connection)
            #expect(third.reconciled)
            #expect(third.groupTotals.groups.alreadyMigrated == groups.inScope)
            #expect(third.groupTotals.memberships.alreadyMigrated == members.added + members.alreadyMember)
        }
    }
}

extension EndToEnd {
    /// Deletes a group on the local site as its administrator would (`DELETE /rest/api/3/group`).
    static func deleteSiteGroup(_ site: LocalSite, groupId: String) async throws {
        var request = HTTPClientRequest(url: site.url + "/rest/api/3/group?groupId=\(groupId)")
        request.method = .DELETE
        request.headers.add(name: "Authorization", value: FaultSuite.authorization(site))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else {
            throw HarnessFailure("the site did not delete the group: \(response.status)")
        }
    }
}
