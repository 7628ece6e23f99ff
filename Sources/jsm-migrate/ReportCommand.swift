import ArgumentParser
import Foundation
import JSMPipeline

/// `jsm-migrate report`: where a migration stands and whether it adds up, from the ledger alone;
/// optionally the requires-attention CSV and the mapping export a data migration needs.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Totals per category and per project, the reconciliation verdict, and CSV exports.",
        discussion: """
            Reads the ledger only. Emails are never printed: identities are named by user key.

            --attention FILE writes the rejected, merged, second-account, former and disabled identities; \
            --mappings FILE writes every server user key -> cloud account row of the migration's site, \
            the mapping a data migration relinks requests with. Both are CSV, written page by page.
            """)

    /// How the summary is printed.
    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json, csv

        var reportFormat: ReportFormat {
            switch self {
            case .text: .text
            case .json: .json
            case .csv: .csv
            }
        }
    }

    @OptionGroup var global: GlobalOptions
    @OptionGroup var ledger: LedgerOptions

    @Option(help: "The migration's id.")
    var migration: String

    @Option(help: "Summary format: text, json or csv.")
    var format: Format = .text

    @Option(help: ArgumentHelp("Write the requires-attention CSV to this file.", valueName: "file"))
    var attention: String?

    @Option(
        help: ArgumentHelp("Write the mapping export (CSV) of the migration's site to this file.", valueName: "file"))
    var mappings: String?

    func run() async throws {
        global.bootstrapLogging()
        let location = try ledger.location
        try requireExistingLedger(location)
        let migrationId = migration
        let format = format.reportFormat
        let attention = attention
        let mappings = mappings
        try await location.withLedger { ledger in
            let report = try await MigrationReport.load(from: ledger, migrationId: migrationId)
            if let attention {
                let rows = try await ReportExports.writeAttention(
                    ledger: ledger, migrationId: migrationId, to: attention)
                printToStandardError("report: wrote \(rows) requires-attention rows to \(attention)")
            }
            if let mappings {
                let rows = try await ReportExports.writeMappings(ledger: ledger, migrationId: migrationId, to: mappings)
                printToStandardError("report: wrote \(rows) mapping rows to \(mappings)")
            }
            print(report.rendered(as: format), terminator: "")
        }
    }
}

/// Refuses a SQLite ledger file that does not exist, instead of creating an empty one: reading
/// commands must not leave a new ledger behind because of a typo.
func requireExistingLedger(_ location: LedgerLocation) throws {
    if case .sqlite(let path) = location.kind, !FileManager.default.fileExists(atPath: path) {
        throw PipelineError(
            .invalidOptions,
            "no ledger at \(path): pass --ledger sqlite:PATH of an existing ledger, or postgres[:SCHEMA]")
    }
}

/// One line on standard error, so that standard output stays the report alone.
func printToStandardError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
