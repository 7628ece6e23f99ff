import AsyncHTTPClient
import Foundation
import JSMCloud
import JSMCloudSite
import JSMDomain
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO

/// The two stores every site test runs on.
enum StoreKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite
    case postgres

    var description: String { rawValue }
}

/// A site running on 127.0.0.1 at an ephemeral port, for the duration of one test.
struct RunningSite: Sendable {
    let port: Int
    let token: String
    let store: any AccountStore

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Adapter settings for this site, with a short backoff so throttling tests stay quick.
    func adapterConfiguration(maxConcurrentRequests: Int = 64) -> AtlassianCloudConfiguration {
        var configuration = AtlassianCloudConfiguration(
            baseURL: baseURL, userEmail: "migrator@example.com", apiToken: token)
        configuration.maxConcurrentRequests = maxConcurrentRequests
        configuration.retry.initialBackoff = .milliseconds(50)
        return configuration
    }

    /// Runs `body` with an adapter for this site.
    func withAdapter<Result: Sendable>(
        maxConcurrentRequests: Int = 64,
        _ body: (AtlassianCloudSite) async throws -> Result
    ) async throws -> Result {
        try await AtlassianCloudSite.withSite(
            configuration: adapterConfiguration(maxConcurrentRequests: maxConcurrentRequests), body)
    }
}

/// An HTTP answer read in full, for tests that check Atlassian's wire format directly.
struct RawAnswer: Sendable {
    let status: Int
    let headers: HTTPHeaders
    let body: String

    /// The body as a JSON object.
    var object: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
    }

    /// The body as a JSON array of objects.
    var array: [[String: Any]] {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [[String: Any]] ?? []
    }

    /// All error messages in either Atlassian error shape.
    var errorText: String {
        let object = self.object
        var parts = (object["errorMessages"] as? [String]) ?? []
        if let message = object["errorMessage"] as? String { parts.append(message) }
        return parts.joined(separator: " ")
    }
}

enum SiteHarness {
    static let logger: Logger = {
        var logger = Logger(label: "site-test")
        logger.logLevel = .warning
        return logger
    }()

    /// Starts a site on `kind`, runs `body`, then stops it and removes its data.
    static func withSite<Result: Sendable>(
        _ kind: StoreKind,
        requestsPerSecond: Double? = nil,
        burst: Double? = nil,
        seed: [NewSiteAccount] = [],
        _ body: (RunningSite) async throws -> Result
    ) async throws -> Result {
        let token = "test-token-" + UUID().uuidString
        var configuration = LocalCloudSiteConfiguration(apiToken: token)
        configuration.port = 0
        configuration.requestsPerSecond = requestsPerSecond
        configuration.rateLimitBurst = burst
        let store: any AccountStore
        var sqlitePath: String?
        switch kind {
        case .sqlite:
            let path = FileManager.default.temporaryDirectory.appendingPathComponent(
                "site-test-\(UUID().uuidString).sqlite"
            ).path
            sqlitePath = path
            store = try await SQLiteAccountStore.open(path: path, logger: logger)
        case .postgres:
            let schema =
                "site_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
            store = try PostgresAccountStore(
                client: PostgresClient(configuration: try postgresConfiguration()), schema: String(schema),
                logger: logger)
        }
        defer {
            if let sqlitePath {
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: sqlitePath + suffix) }
            }
        }
        // The site stops the way SIGTERM does: a graceful shutdown of its service group. A PostgreSQL
        // store's schema is dropped before that, while its client still runs.
        return try await LocalCloudSite.run(configuration: configuration, store: store, seed: seed, logger: logger) {
            port in
            let site = RunningSite(port: port, token: token, store: store)
            do {
                let result = try await body(site)
                if let postgres = store as? PostgresAccountStore { try await postgres.dropSchema() }
                return result
            } catch {
                if let postgres = store as? PostgresAccountStore { try? await postgres.dropSchema() }
                throw error
            }
        }
    }

    /// PostgreSQL settings from POSTGRES_*; the password has no default, and its absence fails the test.
    static func postgresConfiguration() throws -> PostgresClient.Configuration {
        let environment = ProcessInfo.processInfo.environment
        guard let password = environment["POSTGRES_PASSWORD"] else {
            throw HarnessError(
                "POSTGRES_PASSWORD is not set: source .data/env.sh (scripts/services.sh starts PostgreSQL)")
        }
        return PostgresClient.Configuration(
            host: environment["POSTGRES_HOST"] ?? "127.0.0.1",
            port: Int(environment["POSTGRES_PORT"] ?? "55432") ?? 55432,
            username: environment["POSTGRES_USER"] ?? "jsm",
            password: password,
            database: environment["POSTGRES_DB"] ?? "jsm",
            tls: .disable)
    }

    /// Sends one request with basic auth (`token` nil: no Authorization header at all).
    static func request(
        _ site: RunningSite,
        _ method: HTTPMethod,
        _ pathAndQuery: String,
        body: String? = nil,
        token: String?? = .some(nil)
    ) async throws -> RawAnswer {
        var request = HTTPClientRequest(url: site.baseURL + pathAndQuery)
        request.method = method
        let presented: String? =
            switch token {
            case .none: nil
            case .some(.none): site.token
            case .some(.some(let other)): other
            }
        if let presented {
            let credentials = Data("tester@example.com:\(presented)".utf8).base64EncodedString()
            request.headers.add(name: "Authorization", value: "Basic \(credentials)")
        }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        return RawAnswer(status: Int(response.status.code), headers: response.headers, body: String(buffer: bytes))
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
