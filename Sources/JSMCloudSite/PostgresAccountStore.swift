import JSMDomain
import Logging
import PostgresNIO
import ServiceLifecycle

/// The local site's store in a PostgreSQL schema of its own.
///
/// A batch of accounts is one `INSERT ... SELECT FROM UNNEST(...) ON CONFLICT DO NOTHING RETURNING`,
/// so the unique constraint on (email, account_type) decides between concurrent creators.
public final class PostgresAccountStore: AccountStore {
    private let client: PostgresClient
    private let logger: Logger
    /// The schema the tables live in.
    public let schema: String
    private let accountsTable: String
    private let groupsTable: String
    private let membersTable: String

    /// Prepares a store over a client; `schema` must be a plain lower-case SQL identifier.
    public init(client: PostgresClient, schema: String, logger: Logger) throws {
        guard Self.isPlainIdentifier(schema) else {
            throw AccountStoreError("the schema name must match [a-z_][a-z0-9_]* (got \(schema.debugDescription))")
        }
        self.client = client
        self.schema = schema
        self.logger = logger
        accountsTable = "\"\(schema)\".site_accounts"
        groupsTable = "\"\(schema)\".site_groups"
        membersTable = "\"\(schema)\".site_group_members"
    }

    /// Whether a name can be spliced into SQL as an identifier without quoting surprises.
    public static func isPlainIdentifier(_ name: String) -> Bool {
        guard let first = name.utf8.first, name.utf8.count <= 63 else { return false }
        let isStart = { (byte: UInt8) in (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F }
        return isStart(first) && name.utf8.allSatisfy { isStart($0) || ($0 >= 0x30 && $0 <= 0x39) }
    }

    /// Runs the connection pool until shutdown.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.client.run()
        }
    }

    /// Creates the schema and tables if they are missing.
    public func prepare() async throws {
        let statements: [String] = [
            "CREATE SCHEMA IF NOT EXISTS \"\(schema)\"",
            """
            CREATE TABLE IF NOT EXISTS \(accountsTable) (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                account_id TEXT NOT NULL UNIQUE,
                email TEXT NOT NULL CHECK (email <> '' AND email = lower(btrim(email))),
                account_type TEXT NOT NULL CHECK (account_type IN ('atlassian', 'customer')),
                display_name TEXT NOT NULL,
                products TEXT NOT NULL DEFAULT '',
                UNIQUE (email, account_type)
            )
            """,
            // A schema made before accounts had product access gains the column (no access).
            "ALTER TABLE \(accountsTable) ADD COLUMN IF NOT EXISTS products TEXT NOT NULL DEFAULT ''",
            """
            CREATE TABLE IF NOT EXISTS \(groupsTable) (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                group_id TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                name_key TEXT NOT NULL UNIQUE
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS \(membersTable) (
                group_id TEXT NOT NULL REFERENCES \(groupsTable) (group_id),
                account_id TEXT NOT NULL REFERENCES \(accountsTable) (account_id),
                PRIMARY KEY (group_id, account_id)
            )
            """,
        ]
        // An unreachable server must not hang start-up: the pool would keep retrying in silence.
        let client = self.client
        let logger = self.logger
        let limit = Self.startupConnectionLimit
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                for statement in statements {
                    try await client.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                return true
            }
            group.addTask {
                try await Task.sleep(for: limit)
                return false
            }
            let prepared = try await group.next() ?? false
            group.cancelAll()
            guard prepared else {
                throw AccountStoreError(
                    "could not prepare the site's tables in schema \(schema) within \(limit): is PostgreSQL reachable "
                        + "(POSTGRES_HOST, POSTGRES_PORT) and does it accept the credentials?")
            }
        }
    }

    /// How long start-up waits for PostgreSQL before giving up with an error.
    static let startupConnectionLimit: Duration = .seconds(15)

    public func insertAccounts(_ accounts: [NewSiteAccount]) async throws -> [AccountCreation] {
        guard !accounts.isEmpty else { return [] }
        let ids = accounts.map(\.accountId)
        let emails = accounts.map(\.email.value)
        let types = accounts.map(\.type.rawValue)
        let names = accounts.map(\.displayName)
        let products = accounts.map { JiraProduct.column($0.products) }
        let rows = try await client.query(
            """
            INSERT INTO \(unescaped: accountsTable) (account_id, email, account_type, display_name, products)
            SELECT v.account_id, v.email, v.account_type, v.display_name, v.products
            FROM UNNEST(\(ids)::text[], \(emails)::text[], \(types)::text[], \(names)::text[], \(products)::text[])
                AS v (account_id, email, account_type, display_name, products)
            WHERE v.account_type = 'atlassian' OR NOT EXISTS
                (SELECT 1 FROM \(unescaped: accountsTable) a WHERE a.email = v.email AND a.account_type = 'atlassian')
            ON CONFLICT (email, account_type) DO NOTHING
            RETURNING seq, account_id
            """,
            logger: logger)
        var sequences: [String: Int64] = [:]
        for try await (seq, id) in rows.decode((Int64, String).self) { sequences[id] = seq }
        var existing: [String: [SiteAccount]] = [:]
        if sequences.count < accounts.count {
            let missing = Array(Set(accounts.filter { sequences[$0.accountId] == nil }.map(\.email.value)))
            let found = try await client.query(
                """
                SELECT seq, account_id, email, account_type, display_name, products FROM \(unescaped: accountsTable)
                WHERE email = ANY(\(missing)::text[])
                """,
                logger: logger)
            for try await row in found.decode(AccountRow.self) {
                let account = try Self.account(row)
                existing[account.email, default: []].append(account)
            }
        }
        return try AccountCreation.results(for: accounts, created: sequences, existing: existing)
    }

    public func accounts(withEmail email: String) async throws -> [SiteAccount] {
        let rows = try await client.query(
            """
            SELECT seq, account_id, email, account_type, display_name, products FROM \(unescaped: accountsTable)
            WHERE email = \(email) ORDER BY account_type
            """,
            logger: logger)
        var result: [SiteAccount] = []
        for try await row in rows.decode(AccountRow.self) {
            result.append(try Self.account(row))
        }
        return result
    }

    public func account(withId accountId: String) async throws -> SiteAccount? {
        let rows = try await client.query(
            """
            SELECT seq, account_id, email, account_type, display_name, products FROM \(unescaped: accountsTable)
            WHERE account_id = \(accountId)
            """,
            logger: logger)
        for try await row in rows.decode(AccountRow.self) { return try Self.account(row) }
        return nil
    }

    public func grantProducts(_ products: [String], toAccountId accountId: String) async throws -> SiteAccount? {
        for _ in 0..<productGrantAttempts {
            let rows = try await client.query(
                """
                SELECT seq, account_id, email, account_type, display_name, products FROM \(unescaped: accountsTable)
                WHERE account_id = \(accountId) AND account_type = 'atlassian'
                """,
                logger: logger)
            var current: SiteAccount?
            for try await row in rows.decode(AccountRow.self) { current = try Self.account(row) }
            guard let current else { return nil }
            let wanted = JiraProduct.canonical(current.products + products)
            if wanted == current.products { return current }
            let wantedColumn = JiraProduct.column(wanted)
            let currentColumn = JiraProduct.column(current.products)
            let updated = try await client.query(
                """
                UPDATE \(unescaped: accountsTable) SET products = \(wantedColumn)
                WHERE account_id = \(accountId) AND products = \(currentColumn) RETURNING seq
                """,
                logger: logger)
            for try await _ in updated.decode(Int64.self) {
                return SiteAccount(
                    sequence: current.sequence, accountId: current.accountId, type: current.type,
                    email: current.email, displayName: current.displayName, products: wanted)
            }
        }
        throw AccountStoreError("the account's products kept changing during a grant; try again")
    }

    public func createGroup(named name: String) async throws -> GroupCreation {
        let groupId = AccountIdentifier.groupId()
        let key = name.lowercased()
        let rows = try await client.query(
            """
            INSERT INTO \(unescaped: groupsTable) (group_id, name, name_key) VALUES (\(groupId), \(name), \(key))
            ON CONFLICT (name_key) DO NOTHING RETURNING group_id
            """,
            logger: logger)
        for try await _ in rows.decode(String.self) { return .created(SiteGroup(groupId: groupId, name: name)) }
        guard let existing = try await group(named: name) else {
            throw AccountStoreError("a group conflicted on insert but cannot be read back")
        }
        return .existing(existing)
    }

    public func group(withId groupId: String) async throws -> SiteGroup? {
        let rows = try await client.query(
            "SELECT group_id, name FROM \(unescaped: groupsTable) WHERE group_id = \(groupId)", logger: logger)
        for try await (id, name) in rows.decode((String, String).self) { return SiteGroup(groupId: id, name: name) }
        return nil
    }

    public func group(named name: String) async throws -> SiteGroup? {
        let key = name.lowercased()
        let rows = try await client.query(
            "SELECT group_id, name FROM \(unescaped: groupsTable) WHERE name_key = \(key)", logger: logger)
        for try await (id, name) in rows.decode((String, String).self) { return SiteGroup(groupId: id, name: name) }
        return nil
    }

    /// Removes the group and its memberships in one transaction, which first locks the group's row
    /// (`FOR UPDATE`): a membership being added at the same time waits for it, rather than landing
    /// between the two deletions.
    public func deleteGroup(withId groupId: String) async throws -> Bool {
        let groupsTable = self.groupsTable
        let membersTable = self.membersTable
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection in
            let locked = try await connection.query(
                "SELECT group_id FROM \(unescaped: groupsTable) WHERE group_id = \(groupId) FOR UPDATE", logger: logger)
            var found = false
            for try await _ in locked.decode(String.self) { found = true }
            guard found else { return false }
            try await connection.query(
                "DELETE FROM \(unescaped: membersTable) WHERE group_id = \(groupId)", logger: logger)
            try await connection.query(
                "DELETE FROM \(unescaped: groupsTable) WHERE group_id = \(groupId)", logger: logger)
            return true
        }
    }

    public func addMember(accountId: String, groupId: String) async throws -> MembershipResult {
        let rows = try await client.query(
            """
            INSERT INTO \(unescaped: membersTable) (group_id, account_id) VALUES (\(groupId), \(accountId))
            ON CONFLICT DO NOTHING RETURNING group_id
            """,
            logger: logger)
        for try await _ in rows.decode(String.self) { return .added }
        return .alreadyMember
    }

    public func members(ofGroupId groupId: String, startAt: Int, limit: Int) async throws -> SiteMemberPage? {
        let counted = try await client.query(
            """
            SELECT (SELECT count(*) FROM \(unescaped: membersTable) WHERE group_id = \(groupId))
            FROM \(unescaped: groupsTable) WHERE group_id = \(groupId)
            """,
            logger: logger)
        var total: Int64?
        for try await count in counted.decode(Int64.self) { total = count }
        guard let total else { return nil }
        let offset = max(0, startAt)
        let size = max(0, limit)
        let rows = try await client.query(
            """
            SELECT a.seq, a.account_id, a.email, a.account_type, a.display_name, a.products
            FROM \(unescaped: membersTable) m JOIN \(unescaped: accountsTable) a ON a.account_id = m.account_id
            WHERE m.group_id = \(groupId) ORDER BY a.seq LIMIT \(size) OFFSET \(offset)
            """,
            logger: logger)
        var accounts: [SiteAccount] = []
        for try await row in rows.decode(AccountRow.self) { accounts.append(try Self.account(row)) }
        return SiteMemberPage(accounts: accounts, total: Int(total))
    }

    public func counts() async throws -> SiteCounts {
        let rows = try await client.query(
            """
            SELECT
              (SELECT count(*) FROM \(unescaped: accountsTable) WHERE account_type = 'atlassian'),
              (SELECT count(*) FROM \(unescaped: accountsTable) WHERE account_type = 'customer'),
              (SELECT count(*) FROM \(unescaped: groupsTable)),
              (SELECT count(*) FROM \(unescaped: membersTable))
            """,
            logger: logger)
        for try await (atlassian, customer, groups, members) in rows.decode((Int64, Int64, Int64, Int64).self) {
            return SiteCounts(
                atlassianAccounts: Int(atlassian), customerAccounts: Int(customer),
                groups: Int(groups), groupMemberships: Int(members))
        }
        throw AccountStoreError("the counts query returned no row")
    }

    public func accounts(after sequence: Int64, limit: Int) async throws -> [SiteAccount] {
        let rows = try await client.query(
            """
            SELECT seq, account_id, email, account_type, display_name, products FROM \(unescaped: accountsTable)
            WHERE seq > \(sequence) ORDER BY seq LIMIT \(limit)
            """,
            logger: logger)
        var result: [SiteAccount] = []
        for try await row in rows.decode(AccountRow.self) {
            result.append(try Self.account(row))
        }
        return result
    }

    /// Drops the schema and everything in it; tests use it to clean up after themselves.
    public func dropSchema() async throws {
        try await client.query(PostgresQuery(unsafeSQL: "DROP SCHEMA IF EXISTS \"\(schema)\" CASCADE"), logger: logger)
    }

    /// `seq, account_id, email, account_type, display_name, products`, as every account query selects them.
    private typealias AccountRow = (Int64, String, String, String, String, String)

    private static func account(_ row: AccountRow) throws -> SiteAccount {
        SiteAccount(
            sequence: row.0, accountId: row.1, type: try .fromColumn(row.3), email: row.2, displayName: row.4,
            products: JiraProduct.fromColumn(row.5))
    }
}
