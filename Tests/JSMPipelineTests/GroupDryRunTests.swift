import AMQP
import Foundation
import JSMDomain
import JSMLedger
import JSMLocalRun
import JSMPipeline
import JSMServices
import JSMSource
import Testing

extension EndToEndTests {
    @Test(
        "a dry run with --groups --group-membership predicts the report's group and membership totals and changes nothing",
        arguments: Backend.allCases)
    func groupDryRun(backend: Backend) async throws {
        try await withLedgerLocation(backend) { ledgerLocation in
            try await groupDryRun(ledger: ledgerLocation)
        }
    }

    private func groupDryRun(ledger: LedgerLocation?) async throws {
        try await EndToEnd.withWorld(ledger: ledger) { world, connection in
            let projects = try await world.source.withSource { try await $0.projects().map(\.key) }
            // Every licensed user is in scope, so the site's existing Atlassian accounts take part.
            var request = world.request(
                "dry-groups", projects: projects, scope: ScopeOptions(customers: .related, users: .all),
                batchSize: 100)
            request.groups = true
            request.groupMembership = true
            let arranged = try await arrangeSiteGroups(world)
            // The queues exist, so "nothing published" is a count of their messages.
            try await connection.declare(MigrationBrokerTopology().declarations)
            let siteBefore = try await EndToEnd.siteCounts(world.site)
            let accountsBefore = try await EndToEnd.siteAccounts(world.site)

            let predicted = try await dryRun(world, request)
            let forecast = try #require(predicted.groups)
            // The scope in one scratch file, planned whole: the same prediction as from many files.
            #expect(try await dryRun(world, request, scratchBuckets: 1) == predicted)
            // The world exercises every outcome a site that refuses nothing can give.
            #expect(forecast.groups.reused == arranged.groups && forecast.groups.escalationRisks == arranged.groups)
            #expect(forecast.groups.created > 0 && forecast.groups.alreadyMigrated == 0)
            #expect(forecast.memberships.alreadyMember >= arranged.members)
            #expect(forecast.memberships.added > 0 && forecast.memberships.skipped > 0)
            #expect(forecast.invariantHolds)

            // The CLI prints the report's own lines with the same numbers.
            let cli = try await EndToEnd.runCommand(
                [
                    "start", "--dry-run", "--migration", request.migrationId, "--source", world.source.description,
                    "--ledger", world.ledgerLocation.description, "--site-url", world.site.url, "--site-token-file",
                    world.tokenPath, "--site-id", world.siteLocation.siteId, "--users", "all", "--groups",
                    "--group-membership", "--log-level", "warning",
                ] + projects.flatMap { ["--project", $0] }, environment: world.environment, limit: .seconds(120))
            #expect(cli.status == 0, "\(cli.error)")
            for line in forecast.reportLines { #expect(cli.output.contains(line), "\(cli.output)") }
            #expect(!cli.output.contains("not predicted"))

            // Neither dry run changed the site, the ledger or the broker.
            let siteAfter = try await EndToEnd.siteCounts(world.site)
            #expect(siteAfter.groups == siteBefore.groups)
            #expect(siteAfter.groupMemberships == siteBefore.groupMemberships)
            #expect(try await EndToEnd.siteAccounts(world.site) == accountsBefore)
            #expect(try await world.ledger.migration(request.migrationId) == nil)
            let queues = try await EndToEnd.listQueues(environment: world.environment)
            #expect(!queues.isEmpty)
            #expect(queues.values.allSatisfy { $0.ready == 0 }, "\(queues)")

            // The real run reports exactly the prediction, field by field.
            let (_, verdict) = try await world.migrate(request, connection: connection)
            #expect(verdict.reconciled)
            #expect(verdict.groupTotals == forecast)
            #expect(verdict.totals.byCategory == predicted.byCategory)
            let report = try await MigrationReport.load(from: world.ledger, migrationId: request.migrationId)
            #expect(report.groupTotals == forecast)

            // A second migration of the same scope: everything already migrated, predicted exactly too.
            request.migrationId = "dry-groups-again"
            let again = try #require(try await dryRun(world, request).groups)
            #expect(again.groups.alreadyMigrated == forecast.groups.inScope)
            #expect(
                again.memberships.alreadyMigrated == forecast.memberships.added + forecast.memberships.alreadyMember)
            let (_, second) = try await world.migrate(request, connection: connection)
            #expect(second.reconciled)
            #expect(second.groupTotals == again)
        }
    }

    /// The library's dry run of `request` over the world's ledger, source and site.
    func dryRun(
        _ world: LocalWorld, _ request: StartRequest, scratchBuckets: Int = MigrationDryRun.defaultScratchBuckets
    ) async throws -> PredictedTotals {
        try await world.source.withSource { jira in
            try await world.siteLocation.withSite { site in
                let definition = try await MigrationProducer(ledger: world.ledger, source: jira)
                    .definition(for: request)
                return try await MigrationDryRun(
                    ledger: world.ledger, source: jira, site: site, siteConcurrency: 8, scratchBuckets: scratchBuckets
                ).predict(definition)
            }
        }
    }

    /// Gives the site, before any migration, cloud groups named like the two server groups with the
    /// most members that already have an Atlassian account (in upper case: names compare in any
    /// case), and makes every other one of those accounts a member; returns how many of each.
    private func arrangeSiteGroups(_ world: LocalWorld) async throws -> (groups: Int, members: Int) {
        let atlassian = Dictionary(
            try await EndToEnd.siteAccounts(world.site).filter { $0.accountType == "atlassian" }.map {
                ($0.emailAddress, $0.accountId)
            }, uniquingKeysWith: { first, _ in first })
        let accountsByGroup = try await world.source.withSource { jira in
            let classifier = try await jira.loadClassifier()
            var found: [String: Set<String>] = [:]
            for try await classified in jira.classifiedIdentities(classifier: classifier) {
                let identity = classified.identity
                guard identity.kind == .licensedUser, let email = identity.email, let account = atlassian[email.value]
                else { continue }
                for group in classifier.licensing.groupsIncludingAncestors(of: classified.directGroupIds) {
                    found[group.name, default: []].insert(account)
                }
            }
            return found
        }
        let chosen = accountsByGroup.sorted { ($0.value.count, $0.key) > ($1.value.count, $1.key) }.prefix(2)
        #expect(chosen.count == 2 && chosen.allSatisfy { $0.value.count >= 2 }, "the fixture needs linked members")
        let members = try await world.siteLocation.withSite { site in
            var added = 0
            for (name, accounts) in chosen {
                let group = try await site.createGroup(named: name.uppercased()).group
                for (index, account) in accounts.sorted().enumerated() where index.isMultiple(of: 2) {
                    #expect(try await site.addMember(accountId: account, toGroupId: group.groupId) == .added)
                    added += 1
                }
            }
            return added
        }
        return (chosen.count, members)
    }
}
