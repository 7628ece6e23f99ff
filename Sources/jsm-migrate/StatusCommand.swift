import ArgumentParser
import Foundation
import JSMPipeline

/// `jsm-migrate status [--migration ID] [--watch] [--json]`: the queues (ready messages and
/// consumers) and each running migration's progress, rate, ETA and parked batches.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Queues and migrations at a glance: ready and consumers per queue, progress, rate, ETA, parked.",
        discussion: """
            Ready messages and consumers are read by passive declare; unacknowledged messages come from \
            the RabbitMQ management API when --management-url (or JSM_RABBITMQ_MGMT_URL) is given, with \
            the broker user's credentials (a user tagged monitoring is enough). Migrations come from the ledger (batches and items per state, the rate over the last minute). \
            Without --migration, every running migration. --watch redraws every --interval seconds \
            until interrupted.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var broker: BrokerOptions
    @OptionGroup var ledger: LedgerOptions

    @Option(
        help: ArgumentHelp(
            "The RabbitMQ management API, for unacknowledged counts (default: $JSM_RABBITMQ_MGMT_URL).",
            valueName: "url"))
    var managementURL: String?

    @Option(help: "One migration (default: every running migration).")
    var migration: String?

    @Flag(help: "Print JSON (snake_case keys) instead of text.")
    var json = false

    @Flag(help: "Print again every --interval seconds until interrupted.")
    var watch = false

    @Option(help: "Seconds between two prints with --watch (1-60).")
    var interval = 2

    func validate() throws {
        guard (1...60).contains(interval) else { throw ValidationError("--interval must be 1...60 seconds") }
    }

    func run() async throws {
        global.bootstrapLogging()
        let location = try ledger.location
        try requireExistingLedger(location)
        let (migrationId, json, watch, interval) = (migration, json, watch, interval)
        let management = try managementAPI()
        try await location.withLedger { ledger in
            try await broker.withConnection(named: "jsm-migrate status") { connection in
                // Bounded: one print, or with --watch at most a day of prints (or until interrupted).
                for round in 0..<(watch ? 86_400 / interval : 1) {
                    if round > 0 { try await Task.sleep(for: .seconds(interval)) }
                    let status = try await MigrationStatus.take(
                        ledger: ledger, connection: connection, migrationId: migrationId, management: management)
                    if watch, !json { print("\u{1B}[2J\u{1B}[H", terminator: "") }
                    print(json ? status.json() : status.text(), terminator: "")
                    fflush(nil)
                }
            }
        }
    }

    /// The management API from the option or the environment, logging in as the broker user.
    private func managementAPI() throws -> ManagementAPI? {
        guard let url = managementURL ?? ProcessInfo.processInfo.environment["JSM_RABBITMQ_MGMT_URL"], !url.isEmpty
        else { return nil }
        let configuration = try broker.configuration(connectionName: "jsm-migrate status")
        do {
            return try ManagementAPI(baseURL: url, user: configuration.user, password: configuration.password)
        } catch {
            throw ValidationError("--management-url: \(error.message)")
        }
    }
}
