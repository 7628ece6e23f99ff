import ArgumentParser
import Foundation
import JSMSource
import JSMSourceFixtures
import Logging
import PostgresNIO

/// `jsm-migrate generate-source`: writes a realistic Jira Server/DC database for demos, tests and
/// benchmarks, deterministically from a seed, into SQLite or a PostgreSQL schema.
struct GenerateSourceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate-source",
        abstract: "Write a generated Jira Server/DC database (same seed, same database).",
        discussion: """
            Writes directories (one inactive), licensing and nested groups, service and software \
            projects, requests with reporters, participants and organizations, deleted reporters and \
            every edge case of the migration rules in documented proportions. With --site-accounts, \
            also writes the accounts to pre-create on the cloud site, as JSON Lines.
            """)

    @Option(help: "How many directory users to write.")
    var users = 100_000

    @Option(help: "The seed; the same seed writes the same rows.")
    var seed: UInt64 = 1

    @Option(help: "Write into this SQLite file (replacing the Jira tables in it).")
    var sqlite: String?

    @Flag(help: "Write into PostgreSQL, as configured by POSTGRES_HOST, _PORT, _USER, _PASSWORD and _DB.")
    var postgres = false

    @Option(help: "With --postgres: the schema to (re)create the tables in.")
    var schema = "jira"

    @Option(help: "Also write the accounts to pre-create on the cloud site to this JSON Lines file.")
    var siteAccounts: String?

    func validate() throws {
        guard (sqlite != nil) != postgres else {
            throw ValidationError("give exactly one of --sqlite PATH and --postgres")
        }
        guard users > 0 else { throw ValidationError("--users must be positive") }
    }

    func run() async throws {
        let generator = JiraFixtureGenerator(users: users, seed: seed)
        let accounts = try siteAccounts.map(SiteAccountFile.init(path:))
        let started = ContinuousClock.now
        let summary: JiraFixtureSummary
        if let sqlite {
            let database = try await SQLiteSourceDatabase.open(path: sqlite)
            do {
                summary = try await generator.generate(into: SQLiteFixtureWriter(database: database)) {
                    try accounts?.append($0)
                }
                try await database.close()
            } catch {
                try? await database.close()
                throw error
            }
        } else {
            let configuration = try PostgresSourceDatabase.configuration(
                fromEnvironment: ProcessInfo.processInfo.environment)
            let client = PostgresClient(configuration: configuration, backgroundLogger: Logger(label: "jsm.generate"))
            summary = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                return try await generator.generate(into: PostgresFixtureWriter(client: client, schema: schema)) {
                    try accounts?.append($0)
                }
            }
        }
        try accounts?.close()
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(
            "generated \(summary.users) users (\(summary.licensed) licensed, \(summary.customers) customers, "
                + "\(summary.inactiveDirectoryOnly + summary.unknownDirectory) inactive-directory, "
                + "\(summary.deletedAppUsers + summary.deletedUnknownKeys) deleted), "
                + "\(summary.requests + summary.softwareIssues) issues, \(summary.siteAccounts) site accounts "
                + "in \(String(format: "%.1f", seconds)) s into \(sqlite ?? "PostgreSQL schema \(schema)")")
    }
}

/// The JSON Lines file of site accounts, written as the generator produces them.
final class SiteAccountFile {
    let handle: FileHandle
    var pending = ""

    init(path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw ValidationError("cannot create \(path)")
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    }

    func append(_ account: SiteAccount) throws {
        pending += account.jsonLine + "\n"
        if pending.utf8.count > 64 * 1024 { try flush() }
    }

    func flush() throws {
        try handle.write(contentsOf: Data(pending.utf8))
        pending = ""
    }

    func close() throws {
        try flush()
        try handle.close()
    }
}
