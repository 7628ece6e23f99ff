import Foundation
import JSMCloud
import JSMLedger
import JSMSource
import Logging
import PostgresNIO

/// A database as operators spell it on the command line: `sqlite:PATH` or `postgres:SCHEMA`
/// (the connection itself comes from the `POSTGRES_*` variables, so no secret is ever in it).
public enum StoreAddress: Sendable, Hashable, CustomStringConvertible {
    /// A SQLite file.
    case sqlite(path: String)
    /// A PostgreSQL schema.
    case postgres(schema: String)

    /// Parses the spelling; a bare `postgres` means `defaultSchema` when there is one.
    public init?(_ text: String, defaultSchema: String?) {
        if text.hasPrefix("sqlite:"), text.count > "sqlite:".count {
            self = .sqlite(path: String(text.dropFirst("sqlite:".count)))
        } else if text == "postgres", let defaultSchema {
            self = .postgres(schema: defaultSchema)
        } else if text.hasPrefix("postgres:"), text.count > "postgres:".count {
            self = .postgres(schema: String(text.dropFirst("postgres:".count)))
        } else {
            return nil
        }
    }

    /// `sqlite:PATH` or `postgres:SCHEMA`.
    public var description: String {
        switch self {
        case .sqlite(let path): "sqlite:\(path)"
        case .postgres(let schema): "postgres:\(schema)"
        }
    }
}

/// Where the ledger lives, as an operator spells it: `sqlite:PATH` (one host, the embedded
/// default) or `postgres` / `postgres:SCHEMA` (workers on several hosts; connection settings from
/// `POSTGRES_HOST`, `POSTGRES_PORT`, `POSTGRES_USER`, `POSTGRES_PASSWORD`, `POSTGRES_DB`).
public struct LedgerLocation: Sendable, Hashable, CustomStringConvertible {
    /// A SQLite file or a PostgreSQL schema.
    public typealias Kind = StoreAddress

    /// Which ledger.
    public let kind: Kind

    /// Parses `sqlite:PATH`, `postgres` (schema `jsm_ledger`) or `postgres:SCHEMA`; `nil` for anything else.
    public init?(_ text: String) {
        guard let kind = StoreAddress(text, defaultSchema: "jsm_ledger") else { return nil }
        self.kind = kind
    }

    /// The spelling it was parsed from (no secret is ever part of it).
    public var description: String { kind.description }

    /// Opens the ledger (bringing its schema up to date), runs `body`, and closes it.
    ///
    /// - Parameter sqlitePageCacheMiB: SQLite's page cache (ignored for PostgreSQL): large for
    ///   the processes that claim and cut whole scopes, small for workers.
    public func withLedger<T: Sendable>(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        logger: Logger = Logger(label: "jsm.ledger"),
        sqlitePageCacheMiB: Int = SQLiteLedgerConfiguration.largePageCacheMiB, _ body: (Ledger) async throws -> T
    ) async throws -> T {
        switch kind {
        case .sqlite(let path):
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            return try await Ledger.withSQLite(
                SQLiteLedgerConfiguration(path: path, pageCacheMiB: sqlitePageCacheMiB), logger: logger, body)
        case .postgres(let schema):
            let configuration = PostgresLedgerConfiguration(environment: environment, schema: schema)
            return try await Ledger.withPostgres(configuration, logger: logger, body)
        }
    }
}

/// Where the Jira Server/DC database is read from: `sqlite:PATH` or `postgres:SCHEMA` (the schema
/// holding the Jira tables; connection settings from the `POSTGRES_*` variables).
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    /// A SQLite file or a PostgreSQL schema with Jira's tables.
    public typealias Kind = StoreAddress

    /// Which source.
    public let kind: Kind

    /// Parses `sqlite:PATH` or `postgres:SCHEMA`; `nil` for anything else.
    public init?(_ text: String) {
        guard let kind = StoreAddress(text, defaultSchema: nil) else { return nil }
        self.kind = kind
    }

    /// The spelling it was parsed from.
    public var description: String { kind.description }

    /// How much of an SQLite source the processes that read all of it (the producer, verify) map
    /// into memory: on the 1M benchmark source (445 MB) a pass over every identity took 11.5 s
    /// without, 9.0 s with (`source-benchmark classify`).
    public static let wholeSourceMapMiB = 1_024

    /// Opens the source read-only, checks that it is a Jira database (naming what is missing when
    /// it is not), runs `body`, and closes it.
    ///
    /// - Parameter sqliteMapMiB: how much of an SQLite file to map into memory (ignored for
    ///   PostgreSQL): ``wholeSourceMapMiB`` for a process that reads every identity, 0 for workers.
    public func withSource<T: Sendable>(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        logger: Logger = Logger(label: "jsm.source"), sqliteMapMiB: Int = 0, _ body: (JiraSource) async throws -> T
    ) async throws -> T {
        switch kind {
        case .sqlite(let path):
            guard FileManager.default.fileExists(atPath: path) else {
                throw SourceError(.invalidRequest, "the source database \(path) does not exist")
            }
            let database = try await SQLiteSourceDatabase.open(
                path: path, threads: 2, mapMiB: sqliteMapMiB, logger: logger)
            do {
                let source = JiraSource(database: database)
                try await source.checkSchema()
                let result = try await body(source)
                try await database.close()
                return result
            } catch {
                try? await database.close()
                throw error
            }
        case .postgres(let schema):
            let configuration = try PostgresSourceDatabase.configuration(fromEnvironment: environment)
            // The pool would retry a refused login for a minute and then name only its circuit breaker.
            if let refusal = await PostgresLogin.refusal(ofEnvironmentLogin: configuration, logger: logger) {
                throw SourceError(.loginRefused, "the source: \(refusal)")
            }
            let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                let source = JiraSource(
                    database: PostgresSourceDatabase(client: client, schema: schema, logger: logger))
                try await source.checkSchema()
                return try await body(source)
            }
        }
    }
}

/// The cloud site workers write to: its REST base URL, the account the API token belongs to, and
/// the token (read from a file or `JSM_SITE_TOKEN`, never from the command line).
public struct SiteLocation: Sendable, CustomStringConvertible {
    /// `https://your-site.atlassian.net`, or the local site's `http://127.0.0.1:PORT`.
    public let baseURL: String
    /// The email of the account the token belongs to (basic auth user).
    public let userEmail: String
    /// The API token; never printed.
    public let apiToken: String
    /// The ledger's name for the site: mappings are kept per site id.
    public let siteId: String
    /// Concurrent requests per process.
    public var maxConcurrentRequests: Int
    /// A PEM file of the authorities to trust for an https site instead of the system's.
    public var caCertificateFile: String?

    /// Describes a site; `siteId` defaults to the URL's host and port.
    public init(
        baseURL: String, userEmail: String, apiToken: String, siteId: String? = nil, maxConcurrentRequests: Int = 64
    ) {
        let trimmed = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.baseURL = trimmed
        self.userEmail = userEmail
        self.apiToken = apiToken
        self.siteId =
            siteId ?? URL(string: trimmed).map { url in
                (url.host ?? trimmed) + (url.port.map { ":\($0)" } ?? "")
            } ?? trimmed
        self.maxConcurrentRequests = maxConcurrentRequests
    }

    /// The token from `file` when given, else from `JSM_SITE_TOKEN`; `option` names the file's
    /// command-line option in the error.
    public static func readToken(
        file: String?, option: String = "--site-token-file", environment: [String: String]
    ) throws -> String {
        if let file {
            let token = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(
                in: .whitespacesAndNewlines)
            guard !token.isEmpty else { throw PipelineError(.invalidOptions, "the token file \(file) is empty") }
            return token
        }
        if let token = environment["JSM_SITE_TOKEN"], !token.isEmpty { return token }
        throw PipelineError(.invalidOptions, "no site API token: pass \(option) PATH or set JSM_SITE_TOKEN")
    }

    /// The adapter's configuration.
    public var configuration: AtlassianCloudConfiguration {
        var configuration = AtlassianCloudConfiguration(baseURL: baseURL, userEmail: userEmail, apiToken: apiToken)
        configuration.maxConcurrentRequests = maxConcurrentRequests
        configuration.caCertificateFile = caCertificateFile
        return configuration
    }

    /// `site <id> at <url>`, without the token.
    public var description: String { "site \(siteId) at \(baseURL)" }

    /// Runs `body` with an adapter for this site and closes its connections afterwards.
    public func withSite<T: Sendable>(
        metrics: CloudSiteMetrics = CloudSiteMetrics(), logger: Logger = Logger(label: "jsm.cloud"),
        _ body: (AtlassianCloudSite) async throws -> T
    ) async throws -> T {
        try await AtlassianCloudSite.withSite(configuration: configuration, metrics: metrics, logger: logger, body)
    }
}

/// An error of the pipeline's own (options, state), with a code operators and tests can match.
public struct PipelineError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem.
    public enum Code: String, Sendable, Hashable {
        /// Options that contradict each other or name something that does not exist.
        case invalidOptions = "invalid_options"
        /// The ledger, source or site is in a state the command cannot work from.
        case invalidState = "invalid_state"
        /// The run did not reconcile.
        case notReconciled = "not_reconciled"
    }

    /// The code.
    public let code: Code
    /// One line for the operator, naming what was wrong.
    public let message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }
}

extension PostgresLogin {
    /// The refusal of a login built by `PostgresSourceDatabase.configuration(fromEnvironment:)`
    /// (the `POSTGRES_*` variables: loopback, TLS off), as the source and `cloud-site --postgres`
    /// ask before they start a pool.
    public static func refusal(ofEnvironmentLogin configuration: PostgresClient.Configuration, logger: Logger) async
        -> Refusal?
    {
        await refusal(
            host: configuration.host ?? "127.0.0.1", port: configuration.port ?? 5432,
            username: configuration.username, password: configuration.password, database: configuration.database,
            tls: .disable, connectTimeout: .seconds(5), logger: logger)
    }
}
