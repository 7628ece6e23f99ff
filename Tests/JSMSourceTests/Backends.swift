import Foundation
import JSMSource
import JSMSourceFixtures
import Logging
import PostgresNIO

/// The two databases every suite runs against; their results must agree exactly.
enum Backend: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite
    case postgres

    var description: String { rawValue }
}

/// A database a test owns: an SQLite file in a temporary folder, or a PostgreSQL schema of its own.
struct TestDatabase {
    let backend: Backend
    let database: any StreamingSQLDatabase
    let writer: any JiraFixtureWriter
    /// Runs a statement that returns nothing (DDL used to damage a fixture).
    let execute: (String) async throws -> Void

    var source: JiraSource { JiraSource(database: database) }
}

/// Settings of the shared PostgreSQL service, from `POSTGRES_*` (a missing password is a failure,
/// never a skip).
struct PostgresSettings {
    let host: String
    let port: Int
    let user: String
    let password: String
    let database: String

    static func fromEnvironment() throws -> PostgresSettings {
        let environment = ProcessInfo.processInfo.environment
        guard let password = environment["POSTGRES_PASSWORD"], !password.isEmpty else {
            throw TestSetupError(
                "POSTGRES_PASSWORD is not set: run `eval \"$(scripts/services.sh env)\"` in the checkout (scripts/services.sh starts PostgreSQL)"
            )
        }
        return PostgresSettings(
            host: environment["POSTGRES_HOST"] ?? "127.0.0.1", port: Int(environment["POSTGRES_PORT"] ?? "") ?? 55432,
            user: environment["POSTGRES_USER"] ?? "jsm", password: password,
            database: environment["POSTGRES_DB"] ?? "jsm")
    }

    var configuration: PostgresClient.Configuration {
        PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: .disable)
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A name no other test or helper uses.
func uniqueName(_ prefix: String) -> String {
    "\(prefix)_\(UInt64.random(in: 0..<UInt64.max) & 0xFFFF_FFFF_FFFF)"
}

/// Gives `body` an empty database on `backend`, and removes it afterwards.
func withTestDatabase<Result: Sendable>(
    _ backend: Backend, _ body: (TestDatabase) async throws -> Result
) async throws -> Result {
    switch backend {
    case .sqlite:
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("jsm-source-test"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let database = try await SQLiteSourceDatabase.open(path: folder.appendingPathComponent("jira.sqlite").path)
        do {
            let writer = SQLiteFixtureWriter(database: database)
            let result = try await body(
                TestDatabase(backend: backend, database: database, writer: writer, execute: database.execute))
            try await database.close()
            return result
        } catch {
            try? await database.close()
            throw error
        }
    case .postgres:
        let settings = try PostgresSettings.fromEnvironment()
        let client = PostgresClient(
            configuration: settings.configuration, backgroundLogger: Logger(label: "jsm.source.tests"))
        let schema = uniqueName("jsm_source_test")
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            let database = PostgresSourceDatabase(client: client, schema: schema)
            let writer = PostgresFixtureWriter(client: client, schema: schema)
            do {
                try await database.execute("CREATE SCHEMA \"\(schema)\"")
                let result = try await body(
                    TestDatabase(backend: backend, database: database, writer: writer, execute: database.execute))
                try await database.execute("DROP SCHEMA \"\(schema)\" CASCADE")
                group.cancelAll()
                return result
            } catch let error as PSQLError {
                try? await database.execute("DROP SCHEMA IF EXISTS \"\(schema)\" CASCADE")
                group.cancelAll()
                // postgres-nio hides the server's message by default; tests need it.
                throw TestSetupError(String(reflecting: error))
            } catch {
                try? await database.execute("DROP SCHEMA IF EXISTS \"\(schema)\" CASCADE")
                group.cancelAll()
                throw error
            }
        }
    }
}
