import Foundation
import JSMCloudSite
import Logging

/// A local cloud site running in this process, for the demo, the end-to-end tests and benchmarks.
public struct LocalSite: Sendable {
    /// The port it listens on (loopback).
    public let port: Int
    /// The API token it requires.
    public let token: String

    /// `http://127.0.0.1:<port>`.
    public var url: String { "http://127.0.0.1:\(port)" }

    /// Starts a site over a SQLite store at `sqlitePath` with `seed` accounts on a free loopback
    /// port, runs `body`, and shuts the site down gracefully.
    public static func run<T: Sendable>(
        sqlitePath: String, seed: [NewSiteAccount], token: String, requestsPerSecond: Double? = nil,
        logger: Logger = Logger(label: "jsm.local-site"), _ body: (LocalSite) async throws -> T
    ) async throws -> T {
        let store = try await SQLiteAccountStore.open(path: sqlitePath, logger: logger)
        return try await run(
            store: store, seed: seed, token: token, requestsPerSecond: requestsPerSecond, logger: logger, body)
    }

    /// Starts a site over `store` (any of the site's stores, or a test's wrapper of one).
    public static func run<T: Sendable>(
        store: any AccountStore, seed: [NewSiteAccount], token: String, requestsPerSecond: Double? = nil,
        logger: Logger = Logger(label: "jsm.local-site"), _ body: (LocalSite) async throws -> T
    ) async throws -> T {
        var configuration = LocalCloudSiteConfiguration(apiToken: token)
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configuration.requestsPerSecond = requestsPerSecond
        return try await LocalCloudSite.run(configuration: configuration, store: store, seed: seed, logger: logger) {
            port in try await body(LocalSite(port: port, token: token))
        }
    }

    /// A random token of 48 hex digits.
    public static func randomToken() -> String {
        (0..<24).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }
}

/// A failure of the local run harness, naming what went wrong.
public struct LocalRunError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public let description: String

    /// Creates an error.
    public init(_ description: String) { self.description = description }
}
