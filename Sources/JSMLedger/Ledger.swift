import JSMDomain
import Logging

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The migration's durable state: migrations, scope claims, batches, the mapping
/// `server user key -> cloud account` per site, and per-project results (design section 7).
///
/// Workers keep no state between messages: everything that must survive a crash or a redelivery
/// is written here, each operation in one transaction, so a failure leaves nothing half-written
/// and every operation can be repeated safely. The same operations run on SQLite (one host) and
/// PostgreSQL (workers on several hosts), with the same SQL wherever the dialects allow.
public final class Ledger: Sendable {
    let database: any LedgerDatabase
    let now: @Sendable () -> Int64
    /// Undecided identities the cut reads per page (tests make it small to cross page boundaries).
    let cutPageSize: Int

    init(
        database: any LedgerDatabase, now: @escaping @Sendable () -> Int64 = Ledger.wallClockMilliseconds,
        cutPageSize: Int = 50_000
    ) {
        self.database = database
        self.now = now
        self.cutPageSize = max(1, cutPageSize)
    }

    /// Which database this ledger runs on, for logs.
    public var backendName: String {
        switch database.dialect {
        case .postgres: return "postgresql"
        case .sqlite: return "sqlite"
        }
    }

    /// Opens the SQLite ledger at the configured file, brings its schema up to date (unless told
    /// not to), runs `body`, and closes the file.
    public static func withSQLite<T: Sendable>(
        _ configuration: SQLiteLedgerConfiguration, logger: Logger = Logger(label: "jsm.ledger"),
        migrateSchema: Bool = true, _ body: (Ledger) async throws -> T
    ) async throws -> T {
        let database = try await SQLiteLedgerDatabase.open(configuration, logger: logger)
        let ledger = Ledger(database: database)
        do {
            if migrateSchema { _ = try await ledger.migrateSchema() }
            let result = try await body(ledger)
            await database.close()
            return result
        } catch {
            await database.close()
            throw error
        }
    }

    /// Starts a PostgreSQL connection pool, brings the schema up to date (unless told not to),
    /// runs `body`, and shuts the pool down.
    public static func withPostgres<T: Sendable>(
        _ configuration: PostgresLedgerConfiguration, logger: Logger = Logger(label: "jsm.ledger"),
        migrateSchema: Bool = true, _ body: (Ledger) async throws -> T
    ) async throws -> T {
        let database = try PostgresLedgerDatabase(configuration: configuration, logger: logger)
        try await database.checkLogin()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await database.run() }
            do {
                let ledger = Ledger(database: database)
                if migrateSchema { _ = try await ledger.migrateSchema() }
                let result = try await body(ledger)
                group.cancelAll()
                return result
            } catch {
                group.cancelAll()
                throw error
            }
        }
    }

    /// Milliseconds since 1970 (UTC): every timestamp the ledger writes.
    @Sendable static func wallClockMilliseconds() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded())
    }

    // MARK: Schema

    /// Applies the schema versions this ledger lacks, in one transaction, and records them in
    /// `ledger_schema_migrations`. Repeating it changes nothing; a ledger written by a newer
    /// program is refused rather than misread.
    @discardableResult
    public func migrateSchema() async throws(LedgerError) -> SchemaMigrationReport {
        try await migrateSchema(through: LedgerSchema.currentVersion)
    }

    /// Applies the versions up to `lastVersion` only: tests build an older ledger with it.
    @discardableResult
    func migrateSchema(through lastVersion: Int64) async throws(LedgerError) -> SchemaMigrationReport {
        let dialect = database.dialect
        let schema = (database as? PostgresLedgerDatabase)?.configuration.schema
        let now = self.now()
        return try await database.transaction("migrateSchema") { session in
            if let schema {
                // Two processes starting together must not both create the tables.
                try await session.execute("SELECT pg_advisory_xact_lock(hashtext($1))", [.text("jsm-ledger:" + schema)])
                try await session.execute("CREATE SCHEMA IF NOT EXISTS \"\(schema)\"", [])
            }
            try await session.execute(
                """
                CREATE TABLE IF NOT EXISTS ledger_schema_migrations (
                    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)
                """, [])
            let rows = try await session.query("SELECT MAX(version) FROM ledger_schema_migrations", [])
            let installed = rows.first?.optionalInt(0) ?? 0
            guard installed <= LedgerSchema.currentVersion else {
                throw LedgerError(
                    .schemaTooNew, operation: "migrateSchema",
                    "the ledger is at schema version \(installed) but this program knows versions up to "
                        + "\(LedgerSchema.currentVersion): upgrade jsm-migrate before using this ledger")
            }
            var applied: [Int64] = []
            for migration in LedgerSchema.migrations
            where migration.version > installed && migration.version <= lastVersion {
                for statement in migration.statements where migration.dialects.contains(dialect) {
                    try await session.execute(dialect.ddl(statement), [])
                }
                if dialect == .sqlite {
                    try await SQLiteTableEdit.apply(
                        migration.sqliteTableEdits, version: migration.version, in: session)
                }
                try await session.execute(
                    "INSERT INTO ledger_schema_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)",
                    [.int(migration.version), .text(migration.name), .int(now)])
                applied.append(migration.version)
            }
            return SchemaMigrationReport(applied: applied, currentVersion: max(installed, applied.last ?? 0))
        }
    }

    /// Runs `body`, then drops this ledger's PostgreSQL schema and every table in it, whether
    /// `body` succeeded or not: for tests and benchmarks that give a run a schema of its own (a 1M
    /// benchmark leaves several GB). The ledger is unusable afterwards. On SQLite it only runs
    /// `body`: that ledger is a file its creator removes.
    public func droppingPostgresSchema<T>(after body: () async throws -> T) async throws -> T {
        guard let schema = (database as? PostgresLedgerDatabase)?.configuration.schema else { return try await body() }
        // The name was checked when the ledger opened (lower-case letters, digits and _), so quoting it is safe.
        let drop = { [database] () async throws(LedgerError) in
            try await database.transaction("dropPostgresSchema") { session in
                try await session.execute("DROP SCHEMA IF EXISTS \"\(schema)\" CASCADE", [])
            }
        }
        let result: T
        do {
            result = try await body()
        } catch {
            try? await drop()
            throw error
        }
        try await drop()
        return result
    }

    /// The ledger's schema version (0 when it has none yet).
    public func schemaVersion() async throws(LedgerError) -> Int64 {
        try await database.transaction("schemaVersion", readOnly: true) { session in
            let exists: String
            switch session.dialect {
            case .postgres:
                exists = """
                    SELECT COUNT(*) FROM information_schema.tables
                    WHERE table_schema = current_schema() AND table_name = 'ledger_schema_migrations'
                    """
            case .sqlite:
                exists = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'ledger_schema_migrations'"
            }
            guard try await session.first(exists, [])?.int(0) ?? 0 > 0 else { return 0 }
            return try await session.first("SELECT MAX(version) FROM ledger_schema_migrations", [])?.optionalInt(0) ?? 0
        }
    }
}

// MARK: - Options, stored as canonical JSON

/// The options part of a definition, encoded with sorted keys so that equal options are equal text.
struct StoredOptions: Codable, Hashable {
    var siteId: String
    var projectIds: [Int64]
    var customers: String
    var includeRequestless: Bool
    var users: String
    var invalidEmail: String
    var duplicateEmail: String
    var groups: Bool
    var groupMembership: Bool
    var batchSize: Int

    enum CodingKeys: String, CodingKey {
        case siteId = "site_id", projectIds = "project_ids", customers, includeRequestless = "include_requestless"
        case users, invalidEmail = "invalid_email", duplicateEmail = "duplicate_email", groups
        case groupMembership = "group_membership", batchSize = "batch_size"
    }

    init(_ definition: MigrationDefinition) {
        siteId = definition.siteId
        projectIds = definition.projects.map(\.id).sorted()
        customers = definition.scope.customers.rawValue
        includeRequestless = definition.scope.includeRequestless
        users = definition.scope.users.rawValue
        invalidEmail = definition.policies.invalidEmail.rawValue
        duplicateEmail = definition.policies.duplicateEmail.rawValue
        groups = definition.groups
        groupMembership = definition.groupMembership
        batchSize = definition.batchSize
    }

    func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Encoding plain strings, numbers and booleans cannot fail.
        let data = (try? encoder.encode(self)) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    static func decode(_ json: String) -> StoredOptions? {
        try? JSONDecoder().decode(StoredOptions.self, from: Data(json.utf8))
    }

    /// The option names (as the CLI spells them) whose values differ.
    func differences(from other: StoredOptions) -> [String] {
        var names: [String] = []
        if siteId != other.siteId { names.append("site") }
        if projectIds != other.projectIds { names.append("projects") }
        if customers != other.customers { names.append("--customers") }
        if includeRequestless != other.includeRequestless { names.append("--include-requestless") }
        if users != other.users { names.append("--users") }
        if invalidEmail != other.invalidEmail { names.append("--invalid-email") }
        if duplicateEmail != other.duplicateEmail { names.append("--duplicate-email") }
        if groups != other.groups { names.append("--groups") }
        if groupMembership != other.groupMembership { names.append("--group-membership") }
        if batchSize != other.batchSize { names.append("--batch-size") }
        return names
    }
}
