import AMQP
import ArgumentParser
import Foundation
import JSMCloud
import JSMDomain
import JSMLedger
import JSMPipeline
import JSMServices
import JSMSource
import Logging

extension CustomerScope: ExpressibleByArgument {}
extension UserScope: ExpressibleByArgument {}
extension InvalidEmailPolicy: ExpressibleByArgument {}
extension DuplicateEmailPolicy: ExpressibleByArgument {}

/// `jsm-migrate start`: the producer.
struct StartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Validate a migration, record it in the ledger and publish its work (or predict it with --dry-run).",
        discussion: """
            Running start again with the same --migration id and options resumes the migration: \
            nothing is claimed or published twice. Other options under the same id are refused.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var broker: BrokerOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var source: SourceOptions
    @OptionGroup var site: SiteOptions

    @Option(help: "The migration's id (letters, digits, - _ .).")
    var migration: String

    @Option(name: .customLong("project"), help: "A project key to migrate (repeat it; none: migrating in advance).")
    var projects: [String] = []

    @Option(help: "Licensed users: all, related or none.")
    var users: UserScope = .related

    @Option(help: "Customers: all, related or none (none only without service projects).")
    var customers: CustomerScope = .related

    @Flag(help: "With --customers all, also customers who never raised a request.")
    var includeRequestless = false

    @Flag(help: "Also migrate groups (a cloud group with the same name is reused and reported).")
    var groups = false

    @Flag(help: "Also migrate group memberships (needs --groups).")
    var groupMembership = false

    @Option(help: "Missing or invalid emails: block (rejected, reported) or former.")
    var invalidEmail: InvalidEmailPolicy = .block

    @Option(help: "Several identities with one email: merge (one account, the others linked) or block.")
    var duplicateEmail: DuplicateEmailPolicy = .merge

    @Option(help: "Identities per batch (an email is never split, so a batch may be a little larger).")
    var batchSize = 500

    @Flag(help: "Classify every identity and print the totals a real run will report; publish nothing.")
    var dryRun = false

    func validate() throws {
        if groupMembership, !groups { throw ValidationError("--group-membership needs --groups") }
        if includeRequestless, customers != .all {
            throw ValidationError("--include-requestless only applies with --customers all")
        }
        guard (1...10_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1...10000") }
    }

    func run() async throws {
        global.bootstrapLogging()
        let logger = Logger(label: "jsm.start")
        let siteLocation = try site.location()
        let request = StartRequest(
            migrationId: migration, projectKeys: projects,
            scope: ScopeOptions(customers: customers, includeRequestless: includeRequestless, users: users),
            policies: MigrationPolicies(invalidEmail: invalidEmail, duplicateEmail: duplicateEmail),
            groups: groups, groupMembership: groupMembership, batchSize: batchSize, siteId: siteLocation.siteId,
            createdBy: ProcessInfo.processInfo.hostName)
        try await source.location.withSource(sqliteMapMiB: SourceLocation.wholeSourceMapMiB) { jira in
            try await ledger.location.withLedger { ledger in
                try await siteLocation.withSite { cloud in
                    try await Preflight.checkSite(cloud, siteLocation)
                    let producer = MigrationProducer(ledger: ledger, source: jira, logger: logger)
                    if dryRun {
                        let definition = try await producer.definition(for: request)
                        let dryRun = MigrationDryRun(
                            ledger: ledger, source: jira, site: cloud, siteConcurrency: site.siteConcurrency,
                            logger: logger)
                        let predicted: PredictedTotals
                        do {
                            let stopping =
                                "stopping once the source's running statements end; a second signal exits at once "
                                + "and leaves the scratch files for the next dry run to remove"
                            predicted = try await Interruptible.run(logger: logger, stopping: stopping) {
                                try await dryRun.predict(definition)
                            }
                        } catch let interrupted as Interruptible.Interrupted {
                            printToStandardError(
                                "dry run of \(migration) interrupted by \(interrupted.name): nothing recorded, "
                                    + "nothing published, its scratch files removed")
                            throw interrupted.exitCode
                        }
                        print("dry run of \(migration): nothing recorded, nothing published")
                        print(TotalsTable.render(predicted.byCategory))
                        if let groupTotals = predicted.groups {
                            // The report's own lines, so the prediction reads like the report it predicts.
                            print("")
                            print(groupTotals.reportLines.joined(separator: "\n"))
                        }
                        return
                    }
                    // Validate before touching the broker, so a refused migration publishes nothing.
                    _ = try await producer.definition(for: request)
                    let outcome = try await broker.withConnection(named: "jsm-migrate start \(migration)") {
                        connection in
                        try await producer.start(request, connection: connection)
                    }
                    print(
                        "\(outcome.resumed ? "resumed" : "started") \(outcome.migration.id): "
                            + "\(outcome.migration.projectCount) projects, "
                            + "\(outcome.projectMessages) project messages and \(outcome.batchesPublished) batches "
                            + "published; phase \(outcome.migration.phase.rawValue)"
                            + (outcome.anomalies > 0 ? "; \(outcome.anomalies) source anomalies logged" : ""))
                }
            }
        }
    }
}

/// `jsm-migrate worker`: a stateless worker process.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Consume project expansions and identity batches until SIGTERM or SIGINT.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var broker: BrokerOptions
    @OptionGroup var topology: TopologyOptions
    @OptionGroup var metrics: MetricsOptions
    @OptionGroup var shutdown: ShutdownOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var source: SourceOptions
    @OptionGroup var site: SiteOptions

    @Option(help: "Messages handled at once per queue.")
    var concurrency = 4

    @Option(help: "This worker's name in replies and logs (default: host and process id).")
    var workerId: String?

    @Option(help: "Attempts before a failing message is parked.")
    var maxAttempts = 5

    func validate() throws {
        guard (1...256).contains(concurrency) else { throw ValidationError("--concurrency must be 1...256") }
        guard (1...100).contains(maxAttempts) else { throw ValidationError("--max-attempts must be 1...100") }
    }

    func run() async throws {
        MallocArenas.limit()
        global.bootstrapLogging()
        let logger = Logger(label: "jsm.worker")
        let id = workerId ?? "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
        let siteLocation = try site.location()
        let siteMetrics = CloudSiteMetrics()
        try await source.location.withSource { jira in
            // A worker touches one batch at a time: SQLite's small default cache keeps its memory flat.
            try await ledger.location.withLedger(sqlitePageCacheMiB: SQLiteLedgerConfiguration.smallPageCacheMiB) {
                ledger in
                try await siteLocation.withSite(metrics: siteMetrics) { cloud in
                    try await Preflight.checkSite(cloud, siteLocation)
                    try await broker.withConnection(named: "jsm-migrate worker \(id)") { connection in
                        try await topology.prepare(connection)
                        let worker = MigrationWorker(
                            ledger: ledger, source: jira, site: cloud,
                            configuration: WorkerConfiguration(
                                workerId: id, concurrency: concurrency, siteConcurrency: site.siteConcurrency,
                                maxAttempts: maxAttempts, siteId: siteLocation.siteId),
                            logger: logger)
                        _ = try await ProcessLifecycle.run(
                            "worker", metrics: metrics, siteMetrics: siteMetrics, shutdown: shutdown, logger: logger
                        ) { try await worker.run(connection: connection) }
                    }
                }
            }
        }
        logger.notice("worker stopped", metadata: ["worker": "\(id)"])
    }
}

/// `jsm-migrate aggregator`: counts replies and finishes migrations.
struct AggregatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aggregator",
        abstract: "Count replies once per batch, publish batches once projects are expanded, finish migrations.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var broker: BrokerOptions
    @OptionGroup var topology: TopologyOptions
    @OptionGroup var metrics: MetricsOptions
    @OptionGroup var shutdown: ShutdownOptions
    @OptionGroup var ledger: LedgerOptions

    @Option(help: "Exit once this migration has finished (complete or incomplete), printing its totals.")
    var migration: String?

    func run() async throws {
        MallocArenas.limit()
        global.bootstrapLogging()
        let logger = Logger(label: "jsm.aggregator")
        let migration = self.migration
        let verdict = try await ledger.location.withLedger { ledger in
            try await broker.withConnection(named: "jsm-migrate aggregator") { connection in
                try await topology.prepare(connection)
                let aggregator = MigrationAggregator(ledger: ledger, logger: logger)
                return try await ProcessLifecycle.run(
                    "aggregator", metrics: metrics, siteMetrics: nil, shutdown: shutdown, logger: logger
                ) { try await aggregator.run(connection: connection, until: migration) }
            }
        }
        guard let verdict = verdict ?? nil else { return }
        print(Verdicts.render(verdict))
        if !verdict.reconciled { throw ExitCode(1) }
    }
}

/// Text for an aggregator's verdict.
enum Verdicts {
    static func render(_ verdict: AggregatorVerdict) -> String {
        var lines = [
            "migration \(verdict.migrationId): \(verdict.state.rawValue)",
            TotalsTable.render(verdict.totals.byCategory),
            "batches: "
                + BatchState.allCases.map { "\($0.rawValue) \(verdict.batchStates[$0, default: 0])" }
                .joined(separator: ", ") + "; duplicate replies ignored: \(verdict.tally.duplicates)",
            "replies agree with the ledger: \(verdict.repliesMatchLedger ? "yes" : "NO")",
        ]
        if !verdict.missing.isEmpty {
            lines.append(
                "missing: batches "
                    + verdict.missing.batches.prefix(10).map { "\($0.batchId) (\($0.state.rawValue))" }
                    .joined(separator: ", ")
                    + "; undecided user keys "
                    + verdict.missing.undecided.prefix(10).map { LogRedaction.identifier($0.userKey) }
                    .joined(separator: ", "))
        }
        lines.append(
            verdict.reconciled
                ? "RECONCILED: every identity in scope accounted for exactly once"
                : "NOT RECONCILED")
        return lines.joined(separator: "\n")
    }
}

/// Checks before any work: the site answers and accepts the token.
enum Preflight {
    static func checkSite(_ site: AtlassianCloudSite, _ location: SiteLocation) async throws {
        guard let probe = NormalizedEmail("jsm-migrate-preflight@example.invalid") else { return }
        do {
            _ = try await site.accounts(withEmail: probe)
        } catch let error as CloudSiteError where error.code == .unauthorized || error.code == .forbidden {
            throw PipelineError(
                .invalidOptions,
                "the \(location) refused the API token (HTTP \(error.status ?? 0)): check --site-email and the token")
        } catch let error as CloudSiteError {
            throw PipelineError(.invalidState, "the \(location) cannot be used: \(error)")
        }
    }
}

/// glibc gives threads that allocate at the same time arenas of their own, up to eight per core,
/// and keeps each one's freed memory: a long-running worker's resident memory grows with them
/// without using them. Two arenas keep a worker flat under its memory target (measured: about
/// 5 MiB less per worker) at no measurable cost in throughput. `MALLOC_ARENA_MAX` in the
/// environment, if the operator set it, wins.
enum MallocArenas {
    /// `M_ARENA_MAX` of glibc's malloc.h (Swift's Glibc module does not import that header).
    private static let arenaMaxParameter: Int32 = -8

    static func limit() {
        guard ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"] == nil,
            let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt")
        else { return }
        typealias MallOpt = @convention(c) (Int32, Int32) -> Int32
        _ = unsafeBitCast(symbol, to: MallOpt.self)(arenaMaxParameter, 2)
    }
}
