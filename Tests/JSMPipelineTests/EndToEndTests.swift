import AMQP
import Foundation
import JSMCloud
import JSMDomain
import JSMLedger
import JSMLocalRun
import JSMPipeline
import JSMSource
import Logging
import PostgresNIO
import Synchronization
import Testing

/// The migration end to end: `start`, `jsm-migrate worker` processes over the real RabbitMQ, the
/// local cloud site over HTTP, the ledger on SQLite and PostgreSQL, and the aggregator.
@Suite("Migration end to end", .serialized)
struct EndToEndTests {
    enum Backend: String, CaseIterable, Sendable {
        case sqlite, postgres
    }

    /// The row of the decision table an identity falls in, judged from the source and the
    /// accounts the site held before the migration.
    enum Row: String, CaseIterable {
        case customerNew, customerHasCustomer, customerHasAtlassian
        case licensedNew, licensedHasAtlassian, licensedHasOnlyCustomer
        case former, invalidEmail, duplicateMerged
    }

    @Test(
        "every row of the decision table reaches the right outcome on the site and in the ledger",
        arguments: Backend.allCases)
    func decisionTable(backend: Backend) async throws {
        try await withLedgerLocation(backend) { ledgerLocation in
            try await EndToEnd.withWorld(ledger: ledgerLocation) { world, connection in
                let projects = try await world.source.withSource { try await $0.projects().map(\.key) }
                let (_, verdict) = try await world.migrate(
                    world.request("table", projects: projects, batchSize: 100), connection: connection)
                #expect(verdict.reconciled)
                #expect(verdict.totals.invariantHolds)
                let seen = try await checkDecisionTable(world, migrationId: "table")
                for row in Row.allCases {
                    #expect(seen[row, default: 0] > 0, "the fixture has no identity in row \(row)")
                }
                // The report (from the ledger) and verify (recounting the source and the site) agree.
                let report = try await MigrationReport.load(from: world.ledger, migrationId: "table")
                #expect(report.invariantHolds)
                #expect(report.overall == verdict.totals.overall)
                let verification = try await world.source.withSource { jira in
                    try await MigrationVerification.verify(
                        ledger: world.ledger, migrationId: "table", source: jira, site: world.siteLocation)
                }
                #expect(verification.passed, "\(verification.rendered())")
            }
        }
    }

    @Test("related scope over overlapping projects counts each identity once, and a dry run predicts the totals")
    func overlappingProjects() async throws {
        try await EndToEnd.withWorld { world, connection in
            let all = try await world.source.withSource { try await $0.projects() }
            let services = all.filter(\.isServiceProject).map(\.key)
            let request = world.request("overlap", projects: services, batchSize: 200)
            let predicted = try await world.source.withSource { jira in
                try await world.siteLocation.withSite { site in
                    let definition = try await MigrationProducer(ledger: world.ledger, source: jira)
                        .definition(for: request)
                    return try await MigrationDryRun(ledger: world.ledger, source: jira, site: site)
                        .predict(definition)
                }
            }
            // The scope in one scratch file, planned whole, and in 7: the same totals.
            for buckets in [1, 7] {
                let inBuckets = try await world.source.withSource { jira in
                    try await world.siteLocation.withSite { site in
                        let definition = try await MigrationProducer(ledger: world.ledger, source: jira)
                            .definition(for: request)
                        return try await MigrationDryRun(
                            ledger: world.ledger, source: jira, site: site, scratchBuckets: buckets
                        ).predict(definition)
                    }
                }
                #expect(inBuckets == predicted, "\(buckets) scratch files")
            }
            let (started, verdict) = try await world.migrate(request, connection: connection)
            #expect(!started.resumed)
            #expect(verdict.reconciled)
            #expect(predicted.byCategory == verdict.totals.byCategory)
            #expect(predicted.byProject == verdict.totals.byProject)
            let scope = try await EndToEnd.scope(world.ledger, "overlap")
            #expect(Set(scope.map(\.userKey)).count == scope.count)
            #expect(scope.count == verdict.totals.overall.inScope)
            let perProject = verdict.totals.byProject.values.map { $0.values.reduce(0) { $0 + $1.inScope } }
            #expect(perProject.reduce(0, +) > verdict.totals.overall.inScope, "the projects should overlap")
            let mappings = try await EndToEnd.mappings(world.ledger, siteId: world.siteLocation.siteId)
            #expect(scope.allSatisfy { mappings[$0.userKey] != nil })

            // start again with the same id and options: resumed, nothing claimed or published twice.
            let accounts = try await EndToEnd.siteAccounts(world.site).count
            let again = try await world.source.withSource { jira in
                try await MigrationProducer(ledger: world.ledger, source: jira).start(request, connection: connection)
            }
            #expect(again.resumed)
            #expect(again.projectMessages == 0 && again.batchesPublished == 0)
            #expect(again.migration.state == .incomplete)
            #expect(try await world.ledger.totals(migrationId: "overlap") == verdict.totals)
            #expect(try await EndToEnd.siteAccounts(world.site).count == accounts)
        }
    }

    @Test("users and customers migrated in advance are already_migrated in the project migration, with no site call")
    func migratedInAdvance() async throws {
        try await EndToEnd.withWorld { world, connection in
            let advance = world.wholeScopeRequest("advance", batchSize: 200)
            let (_, first) = try await world.migrate(advance, connection: connection)
            #expect(first.reconciled)
            let accountsAfterAdvance = try await EndToEnd.siteAccounts(world.site)
            let mappedInAdvance = try await EndToEnd.mappings(world.ledger, siteId: world.siteLocation.siteId)
                .filter { $0.value.outcome == .created || $0.value.outcome == .linked }
            let requestsAfterAdvance = try await EndToEnd.siteRequests(world.site)
            #expect(requestsAfterAdvance > 0)
            let projects = try await world.source.withSource { try await $0.projects().map(\.key) }
            let (_, second) = try await world.migrate(
                world.request("projects", projects: projects, batchSize: 200), connection: connection)
            #expect(second.reconciled)
            let scope = try await EndToEnd.scopeKeys(world.ledger, "projects")
            let expectedAlready = scope.filter { mappedInAdvance[$0] != nil }.count
            #expect(expectedAlready > 0)
            #expect(second.totals.overall.alreadyMigrated == expectedAlready)
            // Most of them were settled by the cut itself (one SQL pass), not by a worker.
            #expect(second.tally.settledAtCut > 0 && second.tally.settledAtCut <= expectedAlready)
            #expect(second.repliesMatchLedger)
            #expect(second.totals.overall.created == 0)
            #expect(try await EndToEnd.siteAccounts(world.site).count == accountsAfterAdvance.count)
            // Every identity of the project migration was settled without the site: no request at all.
            #expect(try await EndToEnd.siteRequests(world.site) == requestsAfterAdvance)
        }
    }

    @Test("an aggregator killed half way and started again finishes the migration without double counting")
    func aggregatorRestart() async throws {
        try await EndToEnd.withWorld { world, connection in
            let projects = try await world.source.withSource { try await $0.projects().map(\.key) }
            let request = world.request("restart", projects: projects, batchSize: 40)
            _ = try await world.source.withSource { jira in
                try await MigrationProducer(ledger: world.ledger, source: jira).start(request, connection: connection)
            }
            let counted = ProgressBox()
            let first = MigrationAggregator(ledger: world.ledger) { _, done, _ in counted.set(done) }
            let task = Task { try await first.run(connection: connection, until: "restart") }
            // Bounded: at most 600 checks of 100 ms.
            for _ in 0..<600 where counted.value < 3 { try await Task.sleep(for: .milliseconds(100)) }
            task.cancel()
            _ = try? await task.value
            #expect(counted.value >= 3)
            let second = MigrationAggregator(ledger: world.ledger)
            let verdict = try await second.run(connection: connection, until: "restart", checkInterval: .seconds(1))
            let batches = try #require(try await world.ledger.migration("restart")?.batchCount)
            #expect(verdict?.reconciled == true)
            #expect(verdict?.tally.batches.count == batches)
            #expect(try await world.ledger.migration("restart")?.state == .incomplete)
        }
    }

    // MARK: Helpers

    /// Checks every identity of the migration against the decision table; returns how many fell in each row.
    private func checkDecisionTable(_ world: LocalWorld, migrationId: String) async throws -> [Row: Int] {
        var seeded: [String: Set<CloudAccountType>] = [:]
        for account in world.sample.siteAccounts { seeded[account.email.value, default: []].insert(account.type) }
        let scope = try await EndToEnd.scope(world.ledger, migrationId)
        let mappings = try await EndToEnd.mappings(world.ledger, siteId: world.siteLocation.siteId)
        let accounts = try await EndToEnd.siteAccounts(world.site)
        let accountsById = Dictionary(accounts.map { ($0.accountId, $0) }, uniquingKeysWith: { first, _ in first })
        #expect(accountsById.count == accounts.count)
        #expect(Set(accounts.map { "\($0.emailAddress.lowercased())|\($0.accountType)" }).count == accounts.count)
        var groups: [String: [ServerIdentity]] = [:]
        for identity in scope where identity.kind.needsCloudAccount && identity.emailValidity == .valid {
            groups[identity.email?.value ?? "", default: []].append(identity)
        }
        var seen: [Row: Int] = [:]
        for identity in scope {
            let mapping = try #require(mappings[identity.userKey], "no mapping for \(identity.userKey)")
            let row = expectedRow(identity, groups: groups, seeded: seeded)
            seen[row, default: 0] += 1
            let expectation = expectedOutcome(row)
            #expect(mapping.outcome == expectation.outcome, "\(identity.userKey) in row \(row)")
            if let type = expectation.type {
                #expect(mapping.accountType == type, "\(identity.userKey) in row \(row)")
            }
            if row == .licensedHasOnlyCustomer { #expect(mapping.flags.contains(.secondAccount)) }
            if row == .duplicateMerged {
                #expect(mapping.flags.contains(.merged))
                let members = groups[identity.email?.value ?? ""] ?? []
                let primary = try #require(MigrationRules.primary(among: members))
                #expect(mapping.accountId == mappings[primary.userKey]?.accountId)
            }
            if mapping.outcome == .created || mapping.outcome == .linked {
                let account = try #require(accountsById[mapping.accountId ?? ""], "\(identity.userKey)'s account")
                #expect(account.accountType == mapping.accountType?.rawValue)
                #expect(account.emailAddress.lowercased() == identity.email?.value)
            }
        }
        return seen
    }

    private func expectedRow(
        _ identity: ServerIdentity, groups: [String: [ServerIdentity]], seeded: [String: Set<CloudAccountType>]
    ) -> Row {
        guard identity.kind.needsCloudAccount else { return .former }
        guard identity.emailValidity == .valid, let email = identity.email?.value else { return .invalidEmail }
        let members = groups[email] ?? [identity]
        if members.count > 1, MigrationRules.primary(among: members) != identity { return .duplicateMerged }
        let existing = seeded[email] ?? []
        switch identity.kind {
        case .customer:
            if existing.contains(.atlassian) { return .customerHasAtlassian }
            return existing.contains(.customer) ? .customerHasCustomer : .customerNew
        default:
            if existing.contains(.atlassian) { return .licensedHasAtlassian }
            return existing.contains(.customer) ? .licensedHasOnlyCustomer : .licensedNew
        }
    }

    private func expectedOutcome(_ row: Row) -> (outcome: Outcome, type: CloudAccountType?) {
        switch row {
        case .customerNew: (.created, .customer)
        case .customerHasCustomer: (.linked, .customer)
        case .customerHasAtlassian: (.linked, .atlassian)
        case .licensedNew, .licensedHasOnlyCustomer: (.created, .atlassian)
        case .licensedHasAtlassian: (.linked, .atlassian)
        case .former: (.former, nil)
        case .invalidEmail: (.rejected, nil)
        case .duplicateMerged: (.linked, nil)
        }
    }

    /// A ledger location for the backend: a file in the world's folder, or a PostgreSQL schema of
    /// its own that is dropped afterwards.
    func withLedgerLocation(_ backend: Backend, _ body: (LedgerLocation?) async throws -> Void) async throws {
        switch backend {
        case .sqlite:
            try await body(nil)
        case .postgres:
            let schema = "e2e_\(UInt32.random(in: 0...UInt32.max))"
            do {
                try await body(LedgerLocation("postgres:\(schema)"))
                try await dropSchema(schema)
            } catch {
                try? await dropSchema(schema)
                throw error
            }
        }
    }

    private func dropSchema(_ schema: String) async throws {
        let configuration = try PostgresSourceDatabase.configuration(
            fromEnvironment: ProcessInfo.processInfo.environment)
        let client = PostgresClient(configuration: configuration, backgroundLogger: EndToEnd.logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await client.query(PostgresQuery(unsafeSQL: "DROP SCHEMA IF EXISTS \"\(schema)\" CASCADE"))
        }
    }
}

/// The last progress an aggregator reported, readable from the test.
final class ProgressBox: Sendable {
    private let stored = Mutex(0)
    var value: Int { stored.withLock { $0 } }
    func set(_ value: Int) { stored.withLock { $0 = max($0, value) } }
}
