import ArgumentParser
import JSMPipeline

/// `jsm-migrate verify`: recounts a migration from the source database and the cloud site,
/// independently of the messages and the aggregator, and exits 0 only when everything matches.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Recount a migration from the source and the site; exit 0 only when everything matches.",
        discussion: """
            Checks (a) the scope recomputed from the source with the migration's stored options against the \
            ledger's claims, per category, per project and by user key; (b) the ledger's reconciliation \
            invariant, its mapping rows and its batches; (c) that every created or linked mapping points at an \
            account of the mapped type on the site, and that the site holds at most one account per (email, \
            account type).

            A site without the local listing (a real Atlassian site) has the mapped accounts looked up with \
            GET /rest/api/3/user/bulk, 50 per request, when there are at most 5,000,000; otherwise the site \
            check is skipped and verify exits 1 without claiming a match.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var source: SourceOptions
    @OptionGroup var site: SiteOptions

    @Option(help: "The migration's id.")
    var migration: String

    func run() async throws {
        global.bootstrapLogging()
        let ledgerLocation = try ledger.location
        try requireExistingLedger(ledgerLocation)
        let sourceLocation = try source.location
        let siteLocation = try site.location()
        let migrationId = migration
        let verification = try await ledgerLocation.withLedger { ledger in
            try await sourceLocation.withSource(sqliteMapMiB: SourceLocation.wholeSourceMapMiB) { source in
                try await MigrationVerification.verify(
                    ledger: ledger, migrationId: migrationId, source: source, site: siteLocation)
            }
        }
        print(verification.rendered(), terminator: "")
        if !verification.passed { throw ExitCode(1) }
    }
}
