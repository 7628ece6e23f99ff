import ArgumentParser
import Foundation
import Hummingbird
import JSMCloudSite
import JSMLedger
import JSMPipeline
import JSMSource
import Logging
import PostgresNIO

/// `jsm-migrate cloud-site`: serves a local stand-in for an Atlassian Cloud site, with Atlassian's
/// endpoints, paths, JSON shapes and status codes, over its own SQLite or PostgreSQL store.
///
/// It is the default target of the demo, the tests and the benchmarks: workers use the same REST
/// adapter against it as against a real site. It never sends notifications.
struct CloudSiteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloud-site",
        abstract: "Serve a local Atlassian Cloud site (customers, users, groups) for demos, tests and benchmarks.",
        discussion: """
            Endpoints (Atlassian's): POST /rest/servicedeskapi/customer, GET /rest/api/3/user/search, \
            GET and POST /rest/api/3/user, GET /rest/api/3/user/bulk, POST and DELETE /rest/api/3/group, \
            GET /rest/api/3/group/bulk, GET /rest/api/3/group/member, POST /rest/api/3/group/user. This site's own, read-only: GET /_local/v1/counts, \
            GET /_local/v1/accounts?cursor=&limit=. Every request needs basic auth with the API token \
            (any email as user). The token comes from --token-file or JSM_SITE_TOKEN, never the command line. \
            PostgreSQL settings come from POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER, POSTGRES_PASSWORD, \
            POSTGRES_DB. No notification or invitation is ever sent.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one and logs it).")
    var port: Int = 8080

    @Option(help: "Keep the site in this SQLite file (created if missing).")
    var sqlite: String?

    @Flag(help: "Keep the site in PostgreSQL (POSTGRES_* environment variables).")
    var postgres = false

    @Option(help: "PostgreSQL schema for the site's tables (with --postgres).")
    var schema: String = "cloud_site"

    @Option(help: "File holding the API token clients must present (else JSM_SITE_TOKEN).")
    var tokenFile: String?

    @Option(help: "Answer 429 with Retry-After beyond this rate, e.g. 2000/s or 600/m.")
    var rateLimit: String?

    @Option(help: "Accounts to create before serving: JSON Lines (.jsonl) or CSV of email,displayName,accountType.")
    var seedAccounts: String?

    func validate() throws {
        guard (sqlite != nil) != postgres else {
            throw ValidationError("Choose exactly one store: --sqlite PATH or --postgres.")
        }
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be 0 to 65535.") }
        if let rateLimit, RateLimiter.parseRate(rateLimit) == nil {
            throw ValidationError("--rate-limit must look like 2000/s, 600/m or 2000.")
        }
        if postgres, !PostgresAccountStore.isPlainIdentifier(schema) {
            throw ValidationError("--schema must match [a-z_][a-z0-9_]*.")
        }
    }

    func run() async throws {
        global.bootstrapLogging()
        let logger = Logger(label: "jsm.cloud-site")
        var configuration = LocalCloudSiteConfiguration(
            apiToken: try SiteLocation.readToken(
                file: tokenFile, option: "--token-file", environment: ProcessInfo.processInfo.environment))
        configuration.host = host
        configuration.port = port
        configuration.requestsPerSecond = rateLimit.flatMap(RateLimiter.parseRate)
        let seed =
            try seedAccounts.map { path in
                try SeedAccounts.parse(String(contentsOfFile: path, encoding: .utf8), fileName: path)
            } ?? []
        let store: any AccountStore
        if let sqlite {
            store = try await SQLiteAccountStore.open(path: sqlite, logger: logger)
        } else {
            let postgres = try PostgresSourceDatabase.configuration(
                fromEnvironment: ProcessInfo.processInfo.environment)
            // The pool retries a refused login like an unreachable server: without asking first,
            // a wrong password would surface as start-up's 15 s timeout, not as what it is.
            if let refusal = await PostgresLogin.refusal(ofEnvironmentLogin: postgres, logger: logger) {
                throw AccountStoreError("the site's store: \(refusal)")
            }
            store = try PostgresAccountStore(
                client: PostgresClient(configuration: postgres), schema: schema, logger: logger)
        }
        let application = LocalCloudSite.makeApplication(
            configuration: configuration, store: store, seed: seed, logger: logger,
            onServerRunning: { port in
                logger.notice("cloud site listening", metadata: ["host": "\(host)", "port": "\(port)"])
            })
        try await application.runService()
    }

}
