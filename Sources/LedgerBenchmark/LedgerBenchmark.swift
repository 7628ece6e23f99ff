import Foundation
import JSMDomain
import JSMLedger
import Logging

/// `ledger-benchmark`: how long the ledger takes to complete one batch (its mapping rows, the
/// identities' outcomes, the batch's state and stored result, in one transaction), on
/// PostgreSQL and SQLite. Run through `scripts/bench-ledger.sh`.
///
/// Each backend gets a fresh ledger (its own PostgreSQL schema, or a temporary SQLite file,
/// removed afterwards): one migration whose scope of `batches x batch-size` customers is claimed
/// by the producer and cut into batches; then every batch is loaded and completed with one
/// `created` mapping per identity and a result of `--result-bytes` bytes, as a worker would.
/// Only `completeBatch` is timed per batch; claims and the cut are reported as throughput.
@main
struct LedgerBenchmark {
    struct Options {
        var backends: [String] = ["postgres", "sqlite"]
        var batches = 200
        var batchSize = 500
        var resultBytes = 32 * 1024
        var sqliteDirectory = NSTemporaryDirectory()
    }

    static func main() async {
        let options: Options
        do {
            options = try parse(Array(CommandLine.arguments.dropFirst()))
        } catch {
            FileHandle.standardError.write(Data("ledger-benchmark: \(error)\n".utf8))
            exit(2)
        }
        var logger = Logger(label: "jsm.ledger.benchmark")
        logger.logLevel = .warning
        print(
            "ledger-benchmark: \(options.batches) batches x \(options.batchSize) identities, "
                + "result \(options.resultBytes) bytes, completed one at a time")
        for backend in options.backends {
            do {
                try await run(backend, options, logger: logger)
            } catch {
                print("\(backend): FAILED: \(error)")
                exit(1)
            }
        }
        print("peak RSS: \(peakResidentKilobytes() / 1024) MiB")
    }

    static func run(_ backend: String, _ options: Options, logger: Logger) async throws {
        let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        switch backend {
        case "postgres":
            let schema = "ledger_bench_\(suffix)"
            let configuration = PostgresLedgerConfiguration(
                environment: ProcessInfo.processInfo.environment, schema: schema)
            try await Ledger.withPostgres(configuration, logger: logger) { ledger in
                try await ledger.droppingPostgresSchema { try await measure(ledger, label: "postgresql", options) }
            }
        case "sqlite":
            let path = (options.sqliteDirectory as NSString).appendingPathComponent("ledger-bench-\(suffix).sqlite")
            defer {
                for file in [path, path + "-wal", path + "-shm"] { try? FileManager.default.removeItem(atPath: file) }
            }
            try await Ledger.withSQLite(SQLiteLedgerConfiguration(path: path), logger: logger) { ledger in
                try await measure(ledger, label: "sqlite", options)
            }
        default:
            throw BenchmarkError("unknown backend \(backend): use postgres or sqlite")
        }
    }

    static func measure(_ ledger: Ledger, label: String, _ options: Options) async throws {
        let clock = ContinuousClock()
        let identities = options.batches * options.batchSize
        let migrationId = "bench-\(label)"
        _ = try await ledger.createOrResumeMigration(
            MigrationDefinition(
                id: migrationId, siteId: "bench-site", projects: [],
                scope: ScopeOptions(customers: .all, users: .all), batchSize: options.batchSize,
                createdBy: "ledger-benchmark"))
        let people = (0..<identities).map { index in
            ServerIdentity(
                userKey: "user-\(index)", userName: "user\(index)", displayName: "User \(index)",
                rawEmail: "User\(index)@Example.com", directoryId: 1, directoryPosition: 1, isActive: true,
                kind: index % 10 == 0 ? .licensedUser : .customer)
        }
        let claimStart = clock.now
        var start = 0
        while start < people.count {
            try await ledger.claimScope(
                migrationId: migrationId, identities: Array(people[start..<min(start + 5000, people.count)]))
            start += 5000
        }
        let claimTime = clock.now - claimStart
        let cutStart = clock.now
        guard case .advanced(let cut) = try await ledger.advanceToMigratePhase(migrationId: migrationId) else {
            throw BenchmarkError("the phase advance did not win on a fresh ledger")
        }
        let cutTime = clock.now - cutStart

        let result = [UInt8](repeating: 0x5A, count: options.resultBytes)
        var completionTimes: [Duration] = []
        var loadTimes: [Duration] = []
        var after: Int64 = -1
        for _ in 0..<(cut.batchCount / 1000 + 1) {
            let page = try await ledger.batches(migrationId: migrationId, afterSequence: after, limit: 1000)
            for batch in page {
                let loadStart = clock.now
                let content = try await ledger.loadIdentityBatch(migrationId: migrationId, batchId: batch.batchId)
                loadTimes.append(clock.now - loadStart)
                let mappings = content.identities.map { identity in
                    IdentityMapping(
                        userKey: identity.userKey, outcome: .created, accountId: "acc-\(identity.userKey)",
                        accountType: identity.kind == .licensedUser ? .atlassian : .customer)
                }
                let completeStart = clock.now
                let completion = try await ledger.completeBatch(
                    migrationId: migrationId, batchId: batch.batchId, mappings: mappings, result: result)
                completionTimes.append(clock.now - completeStart)
                guard !completion.replayed else { throw BenchmarkError("batch \(batch.batchId) was already done") }
                after = batch.sequence
            }
        }
        let totals = try await ledger.totals(migrationId: migrationId)
        guard totals.invariantHolds, totals.overall.created == identities else {
            throw BenchmarkError("the totals do not reconcile after the run")
        }
        let replayStart = clock.now
        let replay = try await ledger.completeBatch(
            migrationId: migrationId, batchId: "identities-0", mappings: [], result: [])
        let replayTime = clock.now - replayStart
        guard replay.replayed else { throw BenchmarkError("a redelivered completion was not replayed") }

        let sorted = completionTimes.sorted()
        let total = completionTimes.reduce(Duration.zero, +)
        print(
            """
            \(label): completeBatch of \(options.batchSize) identities (\(sorted.count) batches): \
            median \(ms(percentile(sorted, 0.5))) ms, p95 \(ms(percentile(sorted, 0.95))) ms, \
            max \(ms(sorted.last ?? .zero)) ms, \(rate(identities, total)) identities/s
            \(label): loadIdentityBatch median \(ms(percentile(loadTimes.sorted(), 0.5))) ms; \
            replayed completion \(ms(replayTime)) ms; claims \(rate(identities, claimTime)) identities/s; \
            cut into \(cut.batchCount) batches in \(ms(cutTime)) ms
            """)
    }

    static func percentile(_ sorted: [Duration], _ fraction: Double) -> Duration {
        guard !sorted.isEmpty else { return .zero }
        let index = min(sorted.count - 1, Int((Double(sorted.count - 1) * fraction).rounded()))
        return sorted[index]
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func ms(_ duration: Duration) -> String { String(format: "%.2f", seconds(duration) * 1000) }

    static func rate(_ count: Int, _ duration: Duration) -> String {
        String(format: "%.0f", Double(count) / max(seconds(duration), 1e-9))
    }

    /// `VmHWM` of this process, in KiB.
    static func peakResidentKilobytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
        return 0
    }

    static func parse(_ arguments: [String]) throws -> Options {
        var options = Options()
        var index = 0
        func value() throws -> String {
            index += 1
            guard index < arguments.count else { throw BenchmarkError("\(arguments[index - 1]) needs a value") }
            return arguments[index]
        }
        while index < arguments.count {
            switch arguments[index] {
            case "--backend":
                let name = try value()
                options.backends = name == "both" ? ["postgres", "sqlite"] : [name]
            case "--batches": options.batches = Int(try value()) ?? options.batches
            case "--batch-size": options.batchSize = Int(try value()) ?? options.batchSize
            case "--result-bytes": options.resultBytes = Int(try value()) ?? options.resultBytes
            case "--sqlite-dir": options.sqliteDirectory = try value()
            default: throw BenchmarkError("unknown option \(arguments[index])")
            }
            index += 1
        }
        guard options.batches > 0, options.batchSize > 0 else { throw BenchmarkError("sizes must be positive") }
        return options
    }
}

struct BenchmarkError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
