import ArgumentParser
import Foundation
import JSMDomain
import JSMSource
import JSMSourceFixtures
import Logging
import PostgresNIO

#if canImport(Glibc)
    import Glibc
#endif

/// Measures the source adapter: generates a Jira database, or reads and classifies every identity
/// of one, printing users per second and the process's peak resident memory.
///
/// Generation and classification run as separate processes so the classification's peak RSS is
/// its own.
@main
struct SourceBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "source-benchmark",
        abstract: "Generate, or read and classify, a Jira source; print users/s and peak RSS.",
        subcommands: [Generate.self, Classify.self])

    /// Where the database is.
    struct Target: ParsableArguments {
        @Option(help: "An SQLite file.")
        var sqlite: String?

        @Flag(help: "PostgreSQL from POSTGRES_* variables.")
        var postgres = false

        @Option(help: "With --postgres: the schema.")
        var schema = "jira_bench"

        @Option(
            name: .customLong("map-mib"),
            help: "With --sqlite: MiB of the file to map into memory (jsm-migrate start maps 1024).")
        var mapMiB = 0

        func validate() throws {
            guard (sqlite != nil) != postgres else {
                throw ValidationError("give exactly one of --sqlite and --postgres")
            }
        }

        /// Runs `body` with the database open (and PostgreSQL's client running).
        func withDatabase<Result: Sendable>(
            _ body: (any StreamingSQLDatabase, any JiraFixtureWriter) async throws -> Result
        ) async throws -> Result {
            if let sqlite {
                let database = try await SQLiteSourceDatabase.open(path: sqlite, mapMiB: mapMiB)
                do {
                    let result = try await body(database, SQLiteFixtureWriter(database: database))
                    try await database.close()
                    return result
                } catch {
                    try? await database.close()
                    throw error
                }
            }
            let configuration = try PostgresSourceDatabase.configuration(
                fromEnvironment: ProcessInfo.processInfo.environment)
            let client = PostgresClient(configuration: configuration, backgroundLogger: Logger(label: "jsm.bench"))
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                return try await body(
                    PostgresSourceDatabase(client: client, schema: schema),
                    PostgresFixtureWriter(client: client, schema: schema))
            }
        }

        var label: String { sqlite.map { "sqlite" + " (\($0))" } ?? "postgres (schema \(schema))" }
    }

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a generated Jira database.")

        @OptionGroup var target: Target

        @Option(help: "Directory users to write.")
        var users = 100_000

        @Option(help: "Seed.")
        var seed: UInt64 = 1

        func run() async throws {
            let started = ContinuousClock.now
            let summary = try await target.withDatabase { _, writer in
                try await JiraFixtureGenerator(users: users, seed: seed).generate(into: writer)
            }
            let seconds = elapsedSeconds(since: started)
            print(
                "generate \(target.label): \(summary.users) users, \(summary.directoryUserRows) cwd_user rows, "
                    + "\(summary.requests + summary.softwareIssues) issues in \(format(seconds)) s "
                    + "(\(Int(Double(summary.users) / seconds)) users/s), peak RSS \(peakRSSMegabytes()) MB")
        }
    }

    struct Classify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Read and classify every identity.")

        @OptionGroup var target: Target

        func run() async throws {
            let started = ContinuousClock.now
            let (kinds, anomalies) = try await target.withDatabase { database, _ in
                let source = JiraSource(database: database)
                try await source.checkSchema()
                let classifier = try await source.loadClassifier()
                var kinds: [IdentityKind: Int] = [:]
                var anomalies = classifier.licensing.anomalies.count
                for try await classified in source.classifiedIdentities(classifier: classifier) {
                    kinds[classified.identity.kind, default: 0] += 1
                    anomalies += classified.anomalies.count
                }
                for try await _ in source.danglingUserMemberships() { anomalies += 1 }
                return (kinds, anomalies)
            }
            let seconds = elapsedSeconds(since: started)
            let total = kinds.values.reduce(0, +)
            let byKind = IdentityKind.allCases.map { "\($0.rawValue) \(kinds[$0] ?? 0)" }.joined(separator: ", ")
            print(
                "classify \(target.label): \(total) identities (\(byKind); \(anomalies) anomalies) "
                    + "in \(format(seconds)) s = \(Int(Double(total) / seconds)) users/s, "
                    + "peak RSS \(peakRSSMegabytes()) MB")
        }
    }
}

func elapsedSeconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

func format(_ seconds: Double) -> String { String(format: "%.1f", seconds) }

/// The process's peak resident set size (`getrusage`'s `ru_maxrss`, in kilobytes on Linux).
func peakRSSMegabytes() -> Int {
    var usage = rusage()
    guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else { return -1 }
    return Int(usage.ru_maxrss) / 1024
}
