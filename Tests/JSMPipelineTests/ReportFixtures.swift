import Foundation
import JSMCloud
import JSMCloudSite
import JSMDomain
import JSMLocalRun
import JSMPipeline
import JSMSource
import JSMSourceFixtures
import Logging
import Synchronization
import Testing

@testable import JSMLedger

/// The two databases every report and verify scenario runs its ledger on.
enum LedgerBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }
}

/// A small, consistent migration: a generated Jira source in a temporary SQLite file, a local
/// cloud site on a free loopback port, and a ledger that a test-side copy of the pipeline's steps
/// filled by applying JSMDomain's rules and creating accounts through ``AtlassianCloudSite``.
struct ReportWorld: Sendable {
    let ledger: Ledger
    /// The ledger as `--ledger` spells it, for tests that run the built command.
    let ledgerLocation: String
    let migrationId: String
    let siteId: String
    let sourcePath: String
    let site: SiteLocation
    let store: HidingAccountStore
    let projects: [SelectedProject]

    /// Opens the source, read-only as `verify` does.
    func withSource<T: Sendable>(_ body: (JiraSource) async throws -> T) async throws -> T {
        guard let location = JSMPipeline.SourceLocation("sqlite:" + sourcePath) else {
            throw WorldError("bad source path")
        }
        return try await location.withSource(logger: ReportWorldBuilder.logger, body)
    }

    /// Runs `verify` against this world.
    func verify() async throws -> MigrationVerification {
        try await withSource { source in
            try await MigrationVerification.verify(
                ledger: ledger, migrationId: migrationId, source: source, site: site, logger: ReportWorldBuilder.logger)
        }
    }

    /// Deletes one mapping row from the ledger, as a lost write would (no ledger operation does this).
    func removeMapping(userKey: String) async throws {
        let siteId = siteId
        try await ledger.database.transaction("test: remove a mapping") { session in
            try await session.execute(
                "DELETE FROM ledger_mappings WHERE site_id = $1 AND server_user_key = $2",
                [.text(siteId), .text(userKey)])
        }
    }

    /// Adds a portal customer who raised a request in `project` to the source, after the
    /// migration: an in-scope identity the ledger never claimed.
    func addRequestingCustomer(userKey: String, project: SelectedProject) async throws {
        let database = try await SQLiteSourceDatabase.open(
            path: sourcePath, threads: 1, logger: ReportWorldBuilder.logger)
        do {
            let name = userKey.lowercased()
            try await database.execute(
                """
                INSERT INTO cwd_user (id, directory_id, user_name, lower_user_name, active, display_name, email_address,
                    lower_email_address)
                VALUES (990000001, 1, '\(name)', '\(name)', 1, 'Late Customer', '\(name)@late.example.com',
                    '\(name)@late.example.com')
                """)
            try await database.execute(
                "INSERT INTO app_user (id, user_key, lower_user_name) VALUES (990000001, '\(userKey)', '\(name)')")
            try await database.execute(
                """
                INSERT INTO jiraissue (id, project, reporter, creator, assignee)
                VALUES (990000001, \(project.id), '\(userKey)', '\(userKey)', NULL)
                """)
            try await database.close()
        } catch {
            try? await database.close()
            throw error
        }
    }
}

struct WorldError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// An account store that can hide accounts, as a site that lost them would: the store the tests'
/// local site runs on, so `verify` can be shown a missing account.
final class HidingAccountStore: AccountStore {
    let inner: SQLiteAccountStore
    private let hidden = Mutex<Set<String>>([])

    init(inner: SQLiteAccountStore) { self.inner = inner }

    /// From now on the site answers as if it never had this account.
    func hide(accountId: String) { hidden.withLock { _ = $0.insert(accountId) } }

    private func isHidden(_ accountId: String) -> Bool { hidden.withLock { $0.contains(accountId) } }

    private let emails = Mutex<[String: String]>([:])

    /// From now on the site shows this account with another email, as a site holding two accounts
    /// of one (email, type) would (its own store refuses to hold them).
    func showEmail(_ email: String, forAccountId accountId: String) { emails.withLock { $0[accountId] = email } }

    private func shown(_ account: JSMCloudSite.SiteAccount) -> JSMCloudSite.SiteAccount {
        guard let email = emails.withLock({ $0[account.accountId] }) else { return account }
        return JSMCloudSite.SiteAccount(
            sequence: account.sequence, accountId: account.accountId, type: account.type, email: email,
            displayName: account.displayName, products: account.products)
    }

    func run() async throws { try await inner.run() }
    func prepare() async throws { try await inner.prepare() }
    func insertAccounts(_ accounts: [NewSiteAccount]) async throws -> [AccountCreation] {
        try await inner.insertAccounts(accounts)
    }
    func grantProducts(_ products: [String], toAccountId accountId: String) async throws -> JSMCloudSite.SiteAccount? {
        try await inner.grantProducts(products, toAccountId: accountId)
    }
    func accounts(withEmail email: String) async throws -> [JSMCloudSite.SiteAccount] {
        try await inner.accounts(withEmail: email).filter { !isHidden($0.accountId) }
    }
    func account(withId accountId: String) async throws -> JSMCloudSite.SiteAccount? {
        isHidden(accountId) ? nil : try await inner.account(withId: accountId).map(shown)
    }
    func createGroup(named name: String) async throws -> GroupCreation { try await inner.createGroup(named: name) }
    func group(withId groupId: String) async throws -> SiteGroup? { try await inner.group(withId: groupId) }
    func group(named name: String) async throws -> SiteGroup? { try await inner.group(named: name) }
    func deleteGroup(withId groupId: String) async throws -> Bool { try await inner.deleteGroup(withId: groupId) }
    func addMember(accountId: String, groupId: String) async throws -> MembershipResult {
        try await inner.addMember(accountId: accountId, groupId: groupId)
    }
    func members(ofGroupId groupId: String, startAt: Int, limit: Int) async throws -> SiteMemberPage? {
        try await inner.members(ofGroupId: groupId, startAt: startAt, limit: limit)
    }
    func counts() async throws -> SiteCounts { try await inner.counts() }
    func accounts(after sequence: Int64, limit: Int) async throws -> [JSMCloudSite.SiteAccount] {
        try await inner.accounts(after: sequence, limit: limit).filter { !isHidden($0.accountId) }.map(shown)
    }
}

enum ReportWorldBuilder {
    static let logger: Logger = {
        var logger = Logger(label: "report-test")
        logger.logLevel = .warning
        return logger
    }()

    /// Builds a world (ledger on `backend`), runs `body`, and removes every file and schema it made.
    static func withWorld<T: Sendable>(
        _ backend: LedgerBackend, users: Int = 400, seed: UInt64 = 7, scope: ScopeOptions = ScopeOptions(),
        _ body: (ReportWorld) async throws -> T
    ) async throws -> T {
        let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("jsm-report-test-\(suffix)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let sourcePath = folder.appendingPathComponent("jira.sqlite").path
        let seedAccounts = try await generateSource(at: sourcePath, users: users, seed: seed)
        let store = HidingAccountStore(
            inner: try await SQLiteAccountStore.open(
                path: folder.appendingPathComponent("site.sqlite").path, logger: logger))
        return try await withSite(store: store, seed: seedAccounts) { baseURL, token in
            let site = SiteLocation(baseURL: baseURL, userEmail: "migrator@example.com", apiToken: token)
            return try await withLedger(backend, folder: folder) { ledger, ledgerLocation in
                guard let location = JSMPipeline.SourceLocation("sqlite:" + sourcePath) else {
                    throw WorldError("bad source path")
                }
                let projects = try await location.withSource(logger: logger) { source in
                    let all = try await source.projects()
                    let service = all.filter(\.isServiceProject).prefix(2)
                    let software = all.filter { !$0.isServiceProject }.prefix(1)
                    return Array(service + software)
                }
                let definition = MigrationDefinition(
                    id: "report-test-\(suffix)", siteId: site.siteId, projects: projects, scope: scope,
                    batchSize: 50, createdBy: "report tests")
                try await location.withSource(logger: logger) { source in
                    try await site.withSite(logger: logger) { cloud in
                        try await MigrationSimulator.run(
                            ledger: ledger, source: source, site: cloud, definition: definition)
                    }
                }
                let world = ReportWorld(
                    ledger: ledger, ledgerLocation: ledgerLocation, migrationId: definition.id, siteId: site.siteId,
                    sourcePath: sourcePath, site: site,
                    store: store, projects: projects)
                return try await body(world)
            }
        }
    }

    /// Writes a generated Jira database; returns the accounts the generator says the site already has.
    static func generateSource(at path: String, users: Int, seed: UInt64) async throws -> [NewSiteAccount] {
        let database = try await SQLiteSourceDatabase.open(path: path, threads: 1, logger: logger)
        var accounts: [JSMSourceFixtures.SiteAccount] = []
        do {
            try await JiraFixtureGenerator(users: users, seed: seed).generate(
                into: SQLiteFixtureWriter(database: database)
            ) { accounts.append($0) }
            try await database.close()
        } catch {
            try? await database.close()
            throw error
        }
        return accounts.compactMap { account in
            guard let type = CloudAccountType(rawValue: account.accountType), let email = NormalizedEmail(account.email)
            else { return nil }
            return NewSiteAccount(type: type, email: email, displayName: account.displayName)
        }
    }

    /// Runs the local site on a free loopback port for the duration of `body`.
    static func withSite<T: Sendable>(
        store: HidingAccountStore, seed: [NewSiteAccount], _ body: (String, String) async throws -> T
    ) async throws -> T {
        let token = "report-test-token-" + UUID().uuidString
        return try await LocalSite.run(store: store, seed: seed, token: token, logger: logger) { site in
            try await body(site.url, token)
        }
    }

    /// A fresh ledger: a SQLite file in `folder`, or a PostgreSQL schema of its own, dropped at the end.
    static func withLedger<T: Sendable>(
        _ backend: LedgerBackend, folder: URL, _ body: (Ledger, String) async throws -> T
    ) async throws -> T {
        switch backend {
        case .sqlite:
            let path = folder.appendingPathComponent("ledger.sqlite").path
            return try await Ledger.withSQLite(SQLiteLedgerConfiguration(path: path), logger: logger) { ledger in
                try await body(ledger, "sqlite:" + path)
            }
        case .postgres:
            let schema = "report_test_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
            let configuration = PostgresLedgerConfiguration(
                environment: ProcessInfo.processInfo.environment, schema: schema)
            return try await Ledger.withPostgres(configuration, logger: logger) { ledger in
                try await ledger.droppingPostgresSchema { try await body(ledger, "postgres:" + schema) }
            }
        }
    }
}

/// The pipeline's steps, done synchronously in the test process: expand each project into the
/// ledger's scope with JSMDomain's `ScopeSelection`, cut the batches, decide each batch with
/// `BatchPlan`, carry the decisions out on the site and complete the batch in the ledger.
enum MigrationSimulator {
    static func run(
        ledger: Ledger, source: JiraSource, site: some CloudSite, definition: MigrationDefinition
    ) async throws {
        let migrationId = definition.id
        _ = try await ledger.createOrResumeMigration(definition)
        let selection = try ScopeSelection(options: definition.scope, projects: definition.projects)
        let classifier = try await source.loadClassifier()
        for project in definition.projects {
            var references: [IdentityReference] = []
            for try await reference in source.relatedIdentities(of: project) { references.append(reference) }
            let keys = Set(references.map(\.userKey)).sorted()
            var identities: [String: ServerIdentity] = [:]
            for start in stride(from: 0, to: keys.count, by: JiraSource.maximumKeysPerLookup) {
                let chunk = Array(keys[start..<min(start + JiraSource.maximumKeysPerLookup, keys.count)])
                for classified in try await source.classify(userKeys: chunk, classifier: classifier) {
                    identities[classified.identity.userKey] = classified.identity
                }
            }
            let scope = selection.projectScope(for: project, references: references, identities: identities)
            let inScope = scope.customers.union(scope.licensedUsers).union(scope.formers).sorted().map {
                identities[$0] ?? .deleted(userKey: $0)
            }
            try await ledger.claimScope(migrationId: migrationId, projectId: project.id, identities: inScope)
            _ = try await ledger.recordProjectExpanded(
                migrationId: migrationId, projectId: project.id, issuesScanned: 0
            ) {
                _ in []
            }
        }
        if definition.scope.customers == .all || definition.scope.users == .all {
            var reporters = Set<String>()
            for try await reporter in source.requestReporters() { reporters.insert(reporter) }
            var taken: [ServerIdentity] = []
            for try await classified in source.classifiedIdentities(classifier: classifier) {
                let isReporter = reporters.contains(classified.identity.userKey)
                if selection.categoryWithoutReference(classified.identity, isRequestReporter: isReporter) != nil {
                    taken.append(classified.identity)
                }
            }
            try await ledger.claimScope(migrationId: migrationId, identities: taken)
        }
        guard case .advanced = try await ledger.advanceToMigratePhase(migrationId: migrationId) else {
            throw WorldError("the simulated producer did not win the phase change")
        }
        for batch in try await ledger.batches(migrationId: migrationId, limit: 100_000) {
            let content = try await ledger.loadIdentityBatch(migrationId: migrationId, batchId: batch.batchId)
            let prior = try await ledger.priorMappings(
                siteId: definition.siteId, userKeys: content.identities.map(\.userKey))
            let plan = BatchPlan(identities: content.identities, priorMappings: prior, policies: definition.policies)
            var mappings = plan.settled.map { IdentityMapping($0, account: linkedAccount($0.decision)) }
            for group in plan.pending {
                let decision = group.decidePrimary(existingAccounts: try await site.accounts(withEmail: group.email))
                let account: ExistingCloudAccount?
                switch decision.action {
                case .createCustomer:
                    account = try await site.createCustomer(email: group.email, displayName: group.primary.displayName)
                        .account
                case .createAtlassianAccount:
                    account = try await site.createAtlassianAccount(
                        email: group.email, displayName: group.primary.displayName
                    ).account
                case .link(let existing):
                    account = existing
                case .mapToFormer, .nothing:
                    account = nil
                }
                mappings.append(
                    IdentityMapping(IdentityDecision(identity: group.primary, decision: decision), account: account))
                guard let account else { throw WorldError("a primary that needs the site got no account") }
                for follower in group.decideFollowers(primaryAccount: account) {
                    mappings.append(IdentityMapping(follower, account: account))
                }
            }
            _ = try await ledger.completeBatch(
                migrationId: migrationId, batchId: batch.batchId, mappings: mappings, result: [])
        }
        let totals = try await ledger.totals(migrationId: migrationId)
        let finished: MigrationState = totals.overall.rejected == 0 ? .complete : .incomplete
        try await ledger.setMigrationState(migrationId, to: totals.invariantHolds ? finished : .failed)
    }

    /// The account a settled decision links to (a follower of an already-migrated primary).
    static func linkedAccount(_ decision: Decision) -> ExistingCloudAccount? {
        if case .link(let account) = decision.action { return account }
        return nil
    }
}

/// Runs the built `jsm-migrate` as an operator does (the test target depends on it, so it sits
/// beside the test bundle) and returns its exit status and output.
struct CommandRun {
    let status: Int32
    let standardOutput: String
    let standardError: String

    static func jsmMigrate(_ arguments: [String], environment overrides: [String: String] = [:]) async throws
        -> CommandRun
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("jsm-migrate")
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(overrides) { _, new in new }
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        // Bounded: a hang is a failure after 120 s, not a stuck suite.
        let deadline = ContinuousClock.now + .seconds(120)
        while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        return CommandRun(
            status: process.terminationStatus,
            standardOutput: String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
            standardError: String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }
}
