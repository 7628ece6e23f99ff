import AMQP
import Foundation
import JSMCloud
import JSMCloudSite
import JSMDomain
import JSMLedger
import JSMPipeline
import JSMServices
import JSMSource
import Logging

/// Everything a migration needs on one machine: a generated Jira database, a local cloud site
/// seeded with pre-existing accounts, a ledger, and worker processes over the real broker.
public struct LocalWorld: Sendable {
    /// How to build the world.
    public struct Configuration: Sendable {
        /// Folder for the source, site and ledger files and the worker logs (emptied first).
        public var directory: String
        /// Directory users to generate.
        public var users: Int
        /// Generator seed.
        public var seed: UInt64
        /// Worker processes.
        public var workers: Int
        /// `--concurrency` of each worker.
        public var workerConcurrency: Int
        /// The `jsm-migrate` executable the workers run.
        public var executable: URL
        /// The workers' environment (AMQP_URL and friends; PATH).
        public var environment: [String: String]
        /// The ledger (default: a SQLite file in `directory`).
        public var ledger: LedgerLocation?
        /// Site rate limit in requests per second (`nil`: none).
        public var siteRequestsPerSecond: Double?
        /// More worker arguments (e.g. the broker options the caller was given).
        public var workerArguments: [String] = []

        /// A configuration with demo-sized defaults.
        public init(
            directory: String, users: Int = 20_000, seed: UInt64 = 42, workers: Int = 3, workerConcurrency: Int = 4,
            executable: URL, environment: [String: String], ledger: LedgerLocation? = nil,
            siteRequestsPerSecond: Double? = nil
        ) {
            self.directory = directory
            self.users = users
            self.seed = seed
            self.workers = workers
            self.workerConcurrency = workerConcurrency
            self.executable = executable
            self.environment = environment
            self.ledger = ledger
            self.siteRequestsPerSecond = siteRequestsPerSecond
        }
    }

    /// The generated source.
    public let sample: SampleSource
    /// Where the source is.
    public let source: SourceLocation
    /// The running site.
    public let site: LocalSite
    /// The site as workers reach it.
    public let siteLocation: SiteLocation
    /// The ledger the workers and the caller share.
    public let ledger: Ledger
    /// Where the ledger is.
    public let ledgerLocation: LedgerLocation
    /// The worker processes.
    public let workers: WorkerProcesses
    /// The folder of the run.
    public let directory: String
    /// The environment the worker processes run with (broker URL and credentials).
    public let environment: [String: String]
    /// The site token's file, as workers are given it.
    public var tokenPath: String { (directory as NSString).appendingPathComponent("site-token") }

    /// Builds the world, runs `body`, and tears everything down (workers first, with SIGTERM).
    public static func run<T: Sendable>(
        _ configuration: Configuration, logger: Logger = Logger(label: "jsm.local"),
        _ body: (LocalWorld) async throws -> T
    ) async throws -> T {
        let directory = configuration.directory
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let sourcePath = (directory as NSString).appendingPathComponent("jira.sqlite")
        let sample = try await SampleSource.generate(
            users: configuration.users, seed: configuration.seed, sqlitePath: sourcePath)
        let token = LocalSite.randomToken()
        let tokenPath = (directory as NSString).appendingPathComponent("site-token")
        guard
            FileManager.default.createFile(
                atPath: tokenPath, contents: Data(token.utf8), attributes: [.posixPermissions: 0o600])
        else { throw LocalRunError("cannot write \(tokenPath)") }
        let ledgerLocation =
            configuration.ledger
            ?? LedgerLocation("sqlite:" + (directory as NSString).appendingPathComponent("ledger.sqlite"))!
        let source = SourceLocation("sqlite:" + sourcePath)!
        return try await LocalSite.run(
            sqlitePath: (directory as NSString).appendingPathComponent("site.sqlite"), seed: sample.siteAccounts,
            token: token, requestsPerSecond: configuration.siteRequestsPerSecond, logger: logger
        ) { site in
            let siteLocation = SiteLocation(
                baseURL: site.url, userEmail: "migration@example.com", apiToken: token, siteId: "local-site")
            return try await ledgerLocation.withLedger(environment: configuration.environment, logger: logger) {
                ledger in
                let workers = try WorkerProcesses.spawn(
                    executable: configuration.executable, count: configuration.workers,
                    arguments: { index in
                        workerArguments(
                            source: source, ledger: ledgerLocation, siteURL: site.url, tokenPath: tokenPath,
                            siteId: siteLocation.siteId, workerId: "worker-\(index + 1)",
                            concurrency: configuration.workerConcurrency) + configuration.workerArguments
                    }, environment: configuration.environment, logDirectory: directory)
                let world = LocalWorld(
                    sample: sample, source: source, site: site, siteLocation: siteLocation, ledger: ledger,
                    ledgerLocation: ledgerLocation, workers: workers, directory: directory,
                    environment: configuration.environment)
                do {
                    let result = try await body(world)
                    await workers.terminate()
                    return result
                } catch {
                    await workers.terminate()
                    throw error
                }
            }
        }
    }

    /// The `jsm-migrate worker` arguments of a worker of this world.
    static func workerArguments(
        source: SourceLocation, ledger: LedgerLocation, siteURL: String, tokenPath: String, siteId: String,
        workerId: String, concurrency: Int
    ) -> [String] {
        [
            "worker", "--source", source.description, "--ledger", ledger.description, "--site-url", siteURL,
            "--site-token-file", tokenPath, "--site-id", siteId, "--worker-id", workerId,
            "--concurrency", "\(concurrency)", "--log-level", "warning",
        ]
    }

    /// Starts more worker processes over this world (the caller terminates them), optionally
    /// configured for another site id (a misconfigured fleet, in tests).
    public func spawnWorkers(
        _ count: Int, executable: URL, siteId: String? = nil, namePrefix: String = "extra",
        extraArguments: [String] = []
    ) throws -> WorkerProcesses {
        try WorkerProcesses.spawn(
            executable: executable, count: count,
            arguments: { index in
                Self.workerArguments(
                    source: source, ledger: ledgerLocation, siteURL: site.url, tokenPath: tokenPath,
                    siteId: siteId ?? siteLocation.siteId, workerId: "\(namePrefix)-\(index + 1)", concurrency: 2)
                    + extraArguments
            }, environment: environment, logDirectory: directory, logName: namePrefix)
    }

    /// Starts a migration, aggregates it in this process until it finishes, and returns the
    /// verdict; fails when `timeout` passes first or when every worker has died.
    public func migrate(
        _ request: StartRequest, connection: AMQPConnection, timeout: Duration = .seconds(600),
        logger: Logger = Logger(label: "jsm.local"),
        onProgress: @escaping @Sendable (String, Int, Int) -> Void = { _, _, _ in }
    ) async throws -> (start: StartOutcome, verdict: AggregatorVerdict) {
        let outcome = try await source.withSource(logger: logger) { jira in
            try await MigrationProducer(ledger: ledger, source: jira, logger: logger)
                .start(request, connection: connection)
        }
        let aggregator = MigrationAggregator(ledger: ledger, logger: logger, onProgress: onProgress)
        let workers = self.workers
        let verdict = try await withThrowingTaskGroup(of: AggregatorVerdict?.self) { group in
            group.addTask {
                try await aggregator.run(connection: connection, until: request.migrationId, checkInterval: .seconds(1))
            }
            group.addTask {
                let deadline = ContinuousClock.now + timeout
                while ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(500))
                    // A world may run without workers of its own (the caller spawns them).
                    if !workers.processIdentifiers.isEmpty, workers.exited.count == workers.processIdentifiers.count {
                        throw LocalRunError("every worker process exited; see worker-*.log")
                    }
                }
                throw LocalRunError("migration \(request.migrationId) did not finish within \(timeout)")
            }
            defer { group.cancelAll() }
            while let next = try await group.next() {
                if let next { return next }
            }
            throw LocalRunError("the aggregator stopped without a verdict")
        }
        return (outcome, verdict)
    }

    /// A start request for this world's site.
    public func request(
        _ migrationId: String, projects: [String], scope: ScopeOptions = ScopeOptions(),
        policies: MigrationPolicies = MigrationPolicies(), batchSize: Int = 500
    ) -> StartRequest {
        StartRequest(
            migrationId: migrationId, projectKeys: projects, scope: scope, policies: policies, batchSize: batchSize,
            siteId: siteLocation.siteId, createdBy: "local-run")
    }
}
