import Foundation
import JSMDomain
import Logging
import Testing

@testable import JSMLedger

/// The two databases every scenario runs on.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }
}

/// A fresh, empty ledger: a temporary SQLite file, or a PostgreSQL schema of its own (created
/// here, dropped at the end), so that tests never see each other's rows.
func withTestLedger<T: Sendable>(
    _ backend: Backend, migrateSchema: Bool = true, _ body: (Ledger) async throws -> T
) async throws -> T {
    let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
    switch backend {
    case .sqlite:
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("jsm-ledger-test-\(suffix).sqlite")
            .path
        defer {
            for file in [path, path + "-wal", path + "-shm"] { try? FileManager.default.removeItem(atPath: file) }
        }
        return try await Ledger.withSQLite(SQLiteLedgerConfiguration(path: path), migrateSchema: migrateSchema, body)
    case .postgres:
        let schema = "ledger_test_\(suffix)"
        let configuration = PostgresLedgerConfiguration(
            environment: ProcessInfo.processInfo.environment, schema: schema)
        return try await Ledger.withPostgres(configuration, migrateSchema: migrateSchema) { ledger in
            try await ledger.droppingPostgresSchema { try await body(ledger) }
        }
    }
}

/// Runs raw SQL on the ledger's database, for tests that set up a state no operation makes.
func rawExecute(_ ledger: Ledger, _ sql: String, _ binds: [SQLValue] = []) async throws {
    try await ledger.database.transaction("test") { session in try await session.execute(sql, binds) }
}

/// Builders for the people of a scenario.
enum People {
    static func customer(_ key: String, _ email: String?, directoryPosition: Int = 1) -> ServerIdentity {
        ServerIdentity(
            userKey: key, userName: key, displayName: "Customer \(key)", rawEmail: email, directoryId: 1,
            directoryPosition: directoryPosition, isActive: true, kind: .customer)
    }

    static func agent(_ key: String, _ email: String?) -> ServerIdentity {
        ServerIdentity(
            userKey: key, userName: key, displayName: "Agent \(key)", rawEmail: email, directoryId: 1,
            directoryPosition: 1, isActive: true, kind: .licensedUser)
    }

    static func deleted(_ key: String) -> ServerIdentity { .deleted(userKey: key) }
}

/// Selected projects.
enum Projects {
    static let helpdesk = SelectedProject(id: 10_000, key: "HELP", name: "Help desk", projectType: "service_desk")
    static let facilities = SelectedProject(id: 10_001, key: "FAC", name: "Facilities", projectType: "service_desk")
    static let software = SelectedProject(id: 10_002, key: "SW", name: "Software", projectType: "software")
}

func definition(
    _ id: String, site: String = "site-a", projects: [SelectedProject] = [Projects.helpdesk], batchSize: Int = 500,
    scope: ScopeOptions = ScopeOptions()
) -> MigrationDefinition {
    MigrationDefinition(
        id: id, siteId: site, projects: projects, scope: scope, batchSize: batchSize, createdBy: "tests")
}

/// The mapping a worker would write for an identity: customers created as customer accounts,
/// licensed users as Atlassian accounts, formers mapped to the container.
func createdMapping(_ identity: ServerIdentity) -> IdentityMapping {
    switch identity.kind {
    case .customer:
        return IdentityMapping(
            userKey: identity.userKey, outcome: .created, accountId: "acc-\(identity.userKey)", accountType: .customer)
    case .licensedUser:
        return IdentityMapping(
            userKey: identity.userKey, outcome: .created, accountId: "acc-\(identity.userKey)", accountType: .atlassian)
    case .deleted, .inactiveDirectory:
        return IdentityMapping(userKey: identity.userKey, outcome: .former, accountId: "former-container")
    }
}

/// Completes every identity batch of a migration as a worker would, except those named.
func completeAllBatches(_ ledger: Ledger, _ migrationId: String, except skipped: Set<String> = []) async throws {
    for batch in try await ledger.batches(migrationId: migrationId) where !skipped.contains(batch.batchId) {
        let content = try await ledger.loadIdentityBatch(migrationId: migrationId, batchId: batch.batchId)
        _ = try await ledger.completeBatch(
            migrationId: migrationId, batchId: batch.batchId, mappings: content.identities.map(createdMapping),
            result: Array("result of \(batch.batchId)".utf8))
    }
}
