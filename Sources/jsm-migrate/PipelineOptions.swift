import ArgumentParser
import Foundation
import JSMPipeline

/// `--ledger`: where migrations, scope, batches and mappings are kept.
struct LedgerOptions: ParsableArguments {
    @Option(
        name: .customLong("ledger"),
        help: ArgumentHelp(
            "The ledger: sqlite:PATH (one host) or postgres[:SCHEMA] (several hosts; POSTGRES_* variables).",
            valueName: "location"))
    var ledgerText = "sqlite:.jsm/ledger.sqlite"

    /// The parsed location; `validate()` has already refused a bad spelling.
    var location: LedgerLocation {
        get throws {
            guard let location = LedgerLocation(ledgerText) else {
                throw ValidationError("--ledger must be sqlite:PATH, postgres or postgres:SCHEMA, not '\(ledgerText)'")
            }
            return location
        }
    }

    func validate() throws { _ = try location }
}

/// `--source`: the Jira Server/DC database (a read-only replica in production).
struct SourceOptions: ParsableArguments {
    @Option(
        name: .customLong("source"),
        help: ArgumentHelp(
            "The Jira database: sqlite:PATH or postgres:SCHEMA (POSTGRES_* variables).", valueName: "location"))
    var sourceText: String

    /// The parsed location.
    var location: SourceLocation {
        get throws {
            guard let location = SourceLocation(sourceText) else {
                throw ValidationError("--source must be sqlite:PATH or postgres:SCHEMA, not '\(sourceText)'")
            }
            return location
        }
    }

    func validate() throws { _ = try location }
}

/// The cloud site: URL, the account of the API token, the token (file or JSM_SITE_TOKEN) and the
/// ledger's name for the site.
struct SiteOptions: ParsableArguments {
    @Option(help: "The site's base URL, e.g. https://example.atlassian.net or http://127.0.0.1:8480.")
    var siteURL: String

    @Option(help: "Email of the account the API token belongs to.")
    var siteEmail = "migration@example.com"

    @Option(help: "File holding the site's API token (else JSM_SITE_TOKEN; never on the command line).")
    var siteTokenFile: String?

    @Option(help: "The ledger's name for this site (default: the URL's host:port).")
    var siteId: String?

    @Option(help: "Concurrent site requests per process.")
    var siteConcurrency = 64

    @Option(
        name: .customLong("site-ca-file"),
        help: "PEM file of the certificate authorities to trust for an https site (default: the system's).")
    var siteCAFile: String?

    func validate() throws {
        guard let url = URL(string: siteURL), let scheme = url.scheme, ["http", "https"].contains(scheme),
            url.host != nil
        else { throw ValidationError("--site-url must be an http or https URL, not '\(siteURL)'") }
        guard (1...1024).contains(siteConcurrency) else { throw ValidationError("--site-concurrency must be 1...1024") }
        if let siteCAFile, !FileManager.default.isReadableFile(atPath: siteCAFile) {
            throw ValidationError("--site-ca-file: cannot read '\(siteCAFile)'")
        }
    }

    /// The site, with its token read now.
    func location(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SiteLocation {
        var location = SiteLocation(
            baseURL: siteURL, userEmail: siteEmail,
            apiToken: try SiteLocation.readToken(file: siteTokenFile, environment: environment), siteId: siteId,
            maxConcurrentRequests: siteConcurrency)
        location.caCertificateFile = siteCAFile
        return location
    }
}
