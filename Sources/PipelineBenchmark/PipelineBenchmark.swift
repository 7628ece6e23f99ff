import AMQP
import ArgumentParser
import Foundation
import JSMCloud
import JSMContracts
import JSMDomain
import JSMLedger
import JSMLocalRun
import JSMPipeline
import JSMServices
import Logging
import Synchronization

/// Drives whole migrations through the real pipeline (a generated source, the local site as its
/// own process, `jsm-migrate worker` processes, the broker, the ledger) and prints identities/s,
/// each process's peak RSS, the site's raw creation rate in the same run, and a re-run's time.
@main
struct PipelineBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline-benchmark",
        abstract: "Migrate a generated source end to end and report throughput, efficiency and memory.")

    @Option(help: "The jsm-migrate executable (release build).")
    var executable: String

    @Option(help: "Directory users to generate (about 93% end up in scope with --users all --customers all).")
    var users = 1_070_000

    @Option(help: "Comma-separated worker process counts, one run each.")
    var workers = "2,4"

    @Option(help: "Deliveries each worker handles at once.")
    var concurrency = 4

    @Option(help: "Email groups of one batch resolved at the site at once, per delivery.")
    var siteConcurrency = 64

    @Option(help: "Identities per batch.")
    var batchSize = 500

    @Option(help: "Working directory (the generated source is reused when its users and seed match).")
    var directory = "/var/tmp/jsm-pipeline-bench"

    @Option(help: "Creations of the raw site measurement.")
    var rawCount = 100_000

    @Option(
        name: .customLong("ledger"),
        help: "The ledger: sqlite (a file in --directory) or postgres (a schema of its own, POSTGRES_*).")
    var ledgerKind = "sqlite"

    @Option(help: "Give up on one migration after this many seconds.")
    var timeout = 3_600

    func run() async throws {
        var logger = Logger(label: "jsm.bench")
        logger.logLevel = .warning
        let counts = workers.split(separator: ",").compactMap { Int($0) }
        guard !counts.isEmpty, counts.allSatisfy({ $0 > 0 && $0 <= 16 }) else {
            throw ValidationError("--workers must be a list like 2,4")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let source = try generateSource()
        guard let amqpURL = ProcessInfo.processInfo.environment["AMQP_URL"] else {
            throw ValidationError("AMQP_URL is not set: eval \"$(scripts/services.sh env)\"")
        }
        var results: [String] = []
        for count in counts {
            results.append(try await measure(workers: count, source: source, amqpURL: amqpURL, logger: logger))
        }
        print("\n" + results.joined(separator: "\n"))
    }

    private func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    /// Generates the source once per (users, seed); returns its path.
    private func generateSource() throws -> String {
        let sourcePath = path("jira.sqlite")
        let marker = path("jira.generated")
        let expected = "users=\(users) seed=1"
        if (try? String(contentsOfFile: marker, encoding: .utf8)) == expected { return sourcePath }
        print("generating \(users) users...")
        try runProcess([
            "generate-source", "--users", "\(users)", "--seed", "1", "--sqlite", sourcePath, "--site-accounts",
            path("site-accounts.jsonl"),
        ])
        try expected.write(toFile: marker, atomically: true, encoding: .utf8)
        return sourcePath
    }

    private func runProcess(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ValidationError("jsm-migrate \(arguments.first ?? "") failed with \(process.terminationStatus)")
        }
    }

    /// One run with `workers` worker processes: migrate, re-run, measure the site raw.
    private func measure(workers count: Int, source: String, amqpURL: String, logger: Logger) async throws -> String {
        for name in ["site.sqlite", "ledger.sqlite"] {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path(name) + suffix) }
        }
        let token = LocalSite.randomToken()
        let tokenPath = path("site-token")
        guard
            FileManager.default.createFile(
                atPath: tokenPath, contents: Data(token.utf8), attributes: [.posixPermissions: 0o600])
        else { throw ValidationError("cannot write \(tokenPath)") }
        let port = try freeLoopbackPort()
        let siteURL = "http://127.0.0.1:\(port)"
        let siteProcess = try WorkerProcesses.spawn(
            executable: URL(fileURLWithPath: executable), count: 1,
            arguments: { _ in
                [
                    "cloud-site", "--sqlite", path("site.sqlite"), "--port", "\(port)", "--token-file", tokenPath,
                    "--seed-accounts", path("site-accounts.jsonl"), "--log-level", "warning",
                ]
            }, environment: ProcessInfo.processInfo.environment, logDirectory: directory, logName: "site")
        defer { Task { await siteProcess.terminate() } }
        let site = SiteLocation(baseURL: siteURL, userEmail: "bench@example.com", apiToken: token, siteId: "bench")
        try await waitForSite(site)
        let schema = "bench_ledger_\(UInt32.random(in: 0...UInt32.max))"
        let ledgerLocation =
            ledgerKind == "postgres"
            ? LedgerLocation("postgres:" + schema)! : LedgerLocation("sqlite:" + path("ledger.sqlite"))!
        let workerProcesses = try WorkerProcesses.spawn(
            executable: URL(fileURLWithPath: executable), count: count,
            arguments: { index in
                [
                    "worker", "--source", "sqlite:" + source, "--ledger", ledgerLocation.description, "--site-url",
                    siteURL, "--site-token-file", tokenPath, "--site-id", "bench", "--worker-id", "bench-\(index + 1)",
                    "--concurrency", "\(concurrency)", "--site-concurrency", "\(siteConcurrency)", "--log-level",
                    "warning",
                ]
            }, environment: ProcessInfo.processInfo.environment, logDirectory: directory)
        do {
            // The producer and the aggregator each get a ledger and a broker connection of their
            // own, as `jsm-migrate start` and `jsm-migrate aggregator` have in their processes:
            // sharing one ledger, the aggregator's first count held the producer's publishing back.
            let report = try await ledgerLocation.withLedger(logger: logger) { ledger in
                // A PostgreSQL ledger is a schema of this run's own: dropped at the end.
                try await ledger.droppingPostgresSchema {
                    try await ledgerLocation.withLedger(logger: logger) { aggregatorLedger in
                        let connection = try await AMQPConnection.connect(
                            try AMQPConfiguration(url: amqpURL), logger: logger)
                        defer { Task { await connection.close() } }
                        let aggregatorConnection = try await AMQPConnection.connect(
                            try AMQPConfiguration(url: amqpURL), logger: logger)
                        defer { Task { await aggregatorConnection.close() } }
                        let report = try await migrations(
                            workers: count, producer: Side(ledger: ledger, connection: connection),
                            aggregator: Side(ledger: aggregatorLedger, connection: aggregatorConnection),
                            processes: (workerProcesses, siteProcess), site: site, source: source, logger: logger)
                        // Printed now: a failure to drop the schema afterwards must not cost the figures.
                        print(report)
                        return report
                    }
                }
            }
            await workerProcesses.terminate()
            await siteProcess.terminate()
            return report
        } catch {
            await workerProcesses.terminate()
            await siteProcess.terminate()
            throw error
        }
    }

    /// The migration and its re-run with the workers and site already up, and the raw site
    /// measurement after them; returns the report's lines.
    private func migrations(
        workers count: Int, producer: Side, aggregator: Side,
        processes: (workers: WorkerProcesses, site: WorkerProcesses),
        site: SiteLocation, source: String, logger: Logger
    ) async throws -> String {
        let (workerProcesses, siteProcess) = processes
        let connection = producer.connection
        try await connection.declare(MigrationBrokerTopology().declarations)
        for method in [RPCMethod.expandProject, .migrateIdentities] {
            _ = try await connection.purgeQueue(method.queueName)
        }
        _ = try await connection.purgeQueue(MigrationTopology.resultsQueue)
        let snapshot = { CPUSnapshot(workers: workerProcesses, site: siteProcess) }
        let beforeFirst = snapshot()
        let first = try await migrate(
            "bench-\(count)", producer: producer, aggregator: aggregator, source: source, site: site,
            logger: logger)
        let afterFirst = snapshot()
        let workerRSS = workerProcesses.peakResidentKiB
        let rerun = try await migrate(
            "bench-\(count)-rerun", producer: producer, aggregator: aggregator, source: source, site: site,
            logger: logger)
        let afterRerun = snapshot()
        let raw = try await rawCreations(site)
        let siteRSS = siteProcess.peakResidentKiB.first ?? 0
        let identities = first.verdict.totals.overall.inScope
        let rate = Double(identities) / first.seconds
        return [
            "workers: \(count) processes x concurrency \(concurrency), batch \(batchSize), ledger \(ledgerKind)",
            String(
                format: "  migration: %d identities in %.1f s = %.0f identities/s end to end (%@)", identities,
                first.seconds, rate, first.verdict.reconciled ? "reconciled" : "NOT RECONCILED"),
            String(
                format: "  re-run, everything already migrated: %d identities in %.1f s (%@)",
                rerun.verdict.totals.overall.alreadyMigrated, rerun.seconds,
                rerun.verdict.reconciled ? "reconciled" : "NOT RECONCILED"),
            String(
                format: "  site raw creations (adapter, concurrency 128, same site): %.0f/s; efficiency %.2f", raw,
                rate / raw),
            "  CPU, migration: " + afterFirst.spent(since: beforeFirst, wall: first.seconds),
            "  CPU, re-run: " + afterRerun.spent(since: afterFirst, wall: rerun.seconds),
            "  peak RSS: workers \(workerRSS.map { "\($0 / 1024) MiB" }.joined(separator: ", ")); "
                + "site \(siteRSS / 1024) MiB; producer+aggregator \(ownPeakKiB() / 1024) MiB",
        ].joined(separator: "\n")
    }

    /// One migration as an operator runs it: the aggregator is already consuming replies when
    /// `start` claims the scope (it only acts on a migration once start has made it running), and
    /// the source is mapped into memory as `jsm-migrate start` maps it.
    private func migrate(
        _ id: String, producer: Side, aggregator aggregatorSide: Side, source: String, site: SiteLocation,
        logger: Logger
    ) async throws -> (verdict: AggregatorVerdict, seconds: Double) {
        let started = ContinuousClock.now
        let request = StartRequest(
            migrationId: id, projectKeys: [],
            scope: ScopeOptions(customers: .all, includeRequestless: true, users: .all),
            batchSize: batchSize, siteId: site.siteId, createdBy: "pipeline-benchmark")
        let sourceLocation = SourceLocation("sqlite:" + source)!
        let lastPrint = Mutex(ContinuousClock.now)
        let aggregator = MigrationAggregator(ledger: aggregatorSide.ledger, logger: logger) { _, done, total in
            let due = lastPrint.withLock { last in
                guard last.duration(to: .now) > .seconds(10) else { return false }
                last = .now
                return true
            }
            if due { print("  \(done)/\(total) batches") }
        }
        let timeout = self.timeout
        let verdict = try await withThrowingTaskGroup(of: AggregatorVerdict?.self) { group in
            group.addTask {
                guard let verdict = try await aggregator.run(connection: aggregatorSide.connection, until: id) else {
                    throw ValidationError("the aggregator ended without a verdict")
                }
                return verdict
            }
            group.addTask {
                let mapMiB = SourceLocation.wholeSourceMapMiB
                _ = try await sourceLocation.withSource(logger: logger, sqliteMapMiB: mapMiB) { jira in
                    try await MigrationProducer(ledger: producer.ledger, source: jira, logger: logger).start(
                        request, connection: producer.connection)
                }
                print(
                    String(
                        format: "%@: scope claimed, cut and published in %.1f s", id,
                        seconds(started.duration(to: .now))))
                return nil
            }
            group.addTask {
                try await Task.sleep(for: .seconds(timeout))
                throw ValidationError("\(id) did not finish within \(timeout) s")
            }
            defer { group.cancelAll() }
            // Bounded: three tasks; only the producer's ends with nil, the others with a verdict or an error.
            while let next = try await group.next() {
                if let verdict = next { return verdict }
            }
            throw ValidationError("\(id): no verdict")
        }
        return (verdict, seconds(started.duration(to: .now)))
    }

    /// The site's own creation rate: new customers through the adapter, 128 at a time.
    private func rawCreations(_ site: SiteLocation) async throws -> Double {
        var location = site
        location.maxConcurrentRequests = 128
        let runId = UInt32.random(in: 0...UInt32.max)
        return try await location.withSite { adapter in
            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<128 {
                    group.addTask {
                        for index in stride(from: lane, to: rawCount, by: 128) {
                            guard let email = NormalizedEmail("raw-\(runId)-\(index)@bench.example.com") else {
                                continue
                            }
                            _ = try await adapter.createCustomer(email: email, displayName: "Raw \(index)")
                        }
                    }
                }
                try await group.waitForAll()
            }
            return Double(rawCount) / seconds(started.duration(to: .now))
        }
    }

    private func waitForSite(_ site: SiteLocation) async throws {
        guard let probe = NormalizedEmail("probe@bench.example.com") else { return }
        for _ in 0..<600 {
            do {
                _ = try await site.withSite { try await $0.accounts(withEmail: probe) }
                return
            } catch {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        throw ValidationError("the local site did not answer within 120 s (see \(path("site-1.log")))")
    }
}

/// A ledger and a broker connection: what each of the producer and the aggregator has of its own.
private struct Side: Sendable {
    let ledger: Ledger
    let connection: AMQPConnection
}

private func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// CPU seconds used so far by each benchmarked process and by the whole machine, so a run can
/// say where its CPU went (the rest is RabbitMQ, the kernel and anything else running).
private struct CPUSnapshot {
    var workers: [Double]
    var site: Double
    var own: Double
    var machine: Double

    init(workers: WorkerProcesses, site: WorkerProcesses) {
        self.workers = workers.cpuSeconds
        self.site = site.cpuSeconds.first ?? 0
        own = processCPUSeconds(getpid())
        machine = Self.machineBusySeconds()
    }

    /// "workers 61.2 + 60.8 s, site 70.1 s, producer+aggregator 30.2 s, rest 20.3 s; 242.6 of 360.0 core-s busy"
    func spent(since start: CPUSnapshot, wall: Double) -> String {
        let workers = zip(self.workers, start.workers).map { $0 - $1 }
        let site = self.site - start.site
        let own = self.own - start.own
        let busy = machine - start.machine
        let rest = busy - workers.reduce(0, +) - site - own
        let cores = Double(ProcessInfo.processInfo.activeProcessorCount)
        return String(
            format: "workers %@ s, site %.1f s, producer+aggregator %.1f s, rest %.1f s; %.1f of %.1f core-s busy",
            workers.map { String(format: "%.1f", $0) }.joined(separator: " + "), site, own, rest, busy,
            wall * cores)
    }

    /// Busy time of all cores (everything but idle and iowait) from the first line of /proc/stat.
    private static func machineBusySeconds() -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = stat.split(separator: "\n").first
        else { return 0 }
        let ticks = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard ticks.count >= 8 else { return 0 }
        // user nice system idle iowait irq softirq steal
        let busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
        return busy / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// This process's peak resident set in KiB.
private func ownPeakKiB() -> Int {
    var usage = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    return usage.ru_maxrss
}

/// A loopback port nobody listens on now (bound, then released).
private func freeLoopbackPort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw ValidationError("socket() failed") }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
    }
    guard bound == 0 else { throw ValidationError("bind() failed") }
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
    }
    guard named == 0 else { throw ValidationError("getsockname() failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}
