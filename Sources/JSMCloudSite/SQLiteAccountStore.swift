import JSMDomain
import Logging
import NIOCore
import SQLiteNIO
import ServiceLifecycle
import Synchronization

/// The local site's store on one SQLite file, in WAL mode.
///
/// All writes but one go through one connection, one statement each (a batch of accounts is one
/// multi-row `INSERT ... ON CONFLICT DO NOTHING RETURNING`, so one transaction per batch); reads go
/// to a few more connections, which WAL lets run beside the writer. The exception, removing a group,
/// needs a transaction of several statements, and runs it on a connection opened for it.
public final class SQLiteAccountStore: AccountStore {
    private let writer: SQLiteConnection
    private let readers: [SQLiteConnection]
    private let nextReader = Atomic<Int>(0)
    private let logger: Logger
    /// The file, for messages.
    public let path: String

    private init(path: String, writer: SQLiteConnection, readers: [SQLiteConnection], logger: Logger) {
        self.path = path
        self.writer = writer
        self.readers = readers
        self.logger = logger
    }

    /// Opens (creating if needed) the database file with one writer and `readerCount` readers.
    public static func open(path: String, readerCount: Int = 2, logger: Logger) async throws -> SQLiteAccountStore {
        let writer = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        _ = try await writer.query("PRAGMA journal_mode=WAL")
        // Checkpoint every ~40 MB of WAL rather than every 4 MB: the rows of many batches share
        // pages, so each checkpoint copies (and fsyncs) far fewer pages per account created.
        _ = try await writer.query("PRAGMA wal_autocheckpoint=10000")
        // Up to 16 MiB of pages cached (grown only as used): the unique indexes of a few hundred
        // thousand accounts stay in memory instead of being re-read for every batch.
        _ = try await writer.query("PRAGMA cache_size=-16384")
        try await configure(writer)
        var readers: [SQLiteConnection] = []
        for _ in 0..<max(1, readerCount) {
            let reader = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
            try await configure(reader)
            readers.append(reader)
        }
        return SQLiteAccountStore(path: path, writer: writer, readers: readers, logger: logger)
    }

    private static func configure(_ connection: SQLiteConnection) async throws {
        _ = try await connection.query("PRAGMA synchronous=NORMAL")
        _ = try await connection.query("PRAGMA busy_timeout=5000")
        _ = try await connection.query("PRAGMA foreign_keys=ON")
    }

    /// Waits for shutdown (graceful or cancellation), then closes the connections.
    public func run() async throws {
        try? await gracefulShutdown()
        // The future-based close runs even when this task is cancelled, as it is when the
        // service group is cancelled; an unclosed connection would trap in its deinit.
        for connection in readers + [writer] {
            let closed: EventLoopFuture<Void> = connection.close()
            try? await closed.get()
        }
    }

    private var reader: SQLiteConnection {
        readers[nextReader.wrappingAdd(1, ordering: .relaxed).oldValue % readers.count]
    }

    /// Creates the tables; the unique constraint on (email, account_type) is the one-account rule.
    public func prepare() async throws {
        let statements = [
            """
            CREATE TABLE IF NOT EXISTS site_accounts (
                seq INTEGER PRIMARY KEY,
                account_id TEXT NOT NULL UNIQUE,
                email TEXT NOT NULL CHECK (email <> '' AND email = lower(trim(email))),
                account_type TEXT NOT NULL CHECK (account_type IN ('atlassian', 'customer')),
                display_name TEXT NOT NULL,
                products TEXT NOT NULL DEFAULT '',
                UNIQUE (email, account_type)
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS site_groups (
                seq INTEGER PRIMARY KEY,
                group_id TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                name_key TEXT NOT NULL UNIQUE
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS site_group_members (
                group_id TEXT NOT NULL REFERENCES site_groups (group_id),
                account_id TEXT NOT NULL REFERENCES site_accounts (account_id),
                PRIMARY KEY (group_id, account_id)
            )
            """,
        ]
        for statement in statements { _ = try await writer.query(statement) }
        // A file made before accounts had product access gains the column (no access).
        let columns = try await writer.query("PRAGMA table_info(site_accounts)")
        if !columns.contains(where: { $0.column("name")?.string == "products" }) {
            _ = try await writer.query("ALTER TABLE site_accounts ADD COLUMN products TEXT NOT NULL DEFAULT ''")
        }
    }

    public func insertAccounts(_ accounts: [NewSiteAccount]) async throws -> [AccountCreation] {
        guard !accounts.isEmpty else { return [] }
        var sql =
            "INSERT INTO site_accounts (account_id, email, account_type, display_name, products) "
            + "SELECT v.column1, v.column2, v.column3, v.column4, v.column5 FROM (VALUES "
        sql.reserveCapacity(sql.utf8.count + accounts.count * 14 + 300)
        var binds: [SQLiteData] = []
        binds.reserveCapacity(accounts.count * 5)
        for (index, account) in accounts.enumerated() {
            sql += index == 0 ? "(?,?,?,?,?)" : ",(?,?,?,?,?)"
            binds.append(.text(account.accountId))
            binds.append(.text(account.email.value))
            binds.append(.text(account.type.rawValue))
            binds.append(.text(account.displayName))
            binds.append(.text(JiraProduct.column(account.products)))
        }
        // A customer account is never made beside an Atlassian account of the same email.
        sql +=
            ") AS v WHERE v.column3 = 'atlassian' OR NOT EXISTS "
            + "(SELECT 1 FROM site_accounts a WHERE a.email = v.column2 AND a.account_type = 'atlassian') "
            + "ON CONFLICT (email, account_type) DO NOTHING RETURNING seq, account_id"
        let inserted = try await writer.query(sql, binds)
        var sequences: [String: Int64] = [:]
        sequences.reserveCapacity(inserted.count)
        for row in inserted {
            guard let id = row.column("account_id")?.string, let seq = row.column("seq")?.integer else {
                throw AccountStoreError("the insert returned an incomplete row")
            }
            sequences[id] = Int64(seq)
        }
        var existing: [String: [SiteAccount]] = [:]
        if inserted.count < accounts.count {
            let missing = Array(Set(accounts.filter { sequences[$0.accountId] == nil }.map(\.email.value)))
            for chunk in stride(from: 0, to: missing.count, by: 500) {
                let emails = missing[chunk..<min(chunk + 500, missing.count)]
                let placeholders = Array(repeating: "?", count: emails.count).joined(separator: ",")
                let rows = try await writer.query(
                    "SELECT seq, account_id, email, account_type, display_name, products FROM site_accounts WHERE email IN (\(placeholders))",
                    emails.map { .text($0) })
                for row in rows {
                    let account = try Self.account(from: row)
                    existing[account.email, default: []].append(account)
                }
            }
        }
        return try AccountCreation.results(for: accounts, created: sequences, existing: existing)
    }

    public func accounts(withEmail email: String) async throws -> [SiteAccount] {
        let rows = try await reader.query(
            "SELECT seq, account_id, email, account_type, display_name, products FROM site_accounts WHERE email = ? ORDER BY account_type",
            [.text(email)])
        return try rows.map(Self.account(from:))
    }

    public func account(withId accountId: String) async throws -> SiteAccount? {
        let rows = try await reader.query(
            "SELECT seq, account_id, email, account_type, display_name, products FROM site_accounts WHERE account_id = ?",
            [.text(accountId)])
        return try rows.first.map(Self.account(from:))
    }

    public func grantProducts(_ products: [String], toAccountId accountId: String) async throws -> SiteAccount? {
        for _ in 0..<productGrantAttempts {
            let rows = try await writer.query(
                "SELECT seq, account_id, email, account_type, display_name, products FROM site_accounts "
                    + "WHERE account_id = ? AND account_type = 'atlassian'",
                [.text(accountId)])
            guard let current = try rows.first.map(Self.account(from:)) else { return nil }
            let wanted = JiraProduct.canonical(current.products + products)
            if wanted == current.products { return current }
            let updated = try await writer.query(
                "UPDATE site_accounts SET products = ? WHERE account_id = ? AND products = ? RETURNING seq",
                [.text(JiraProduct.column(wanted)), .text(accountId), .text(JiraProduct.column(current.products))])
            if !updated.isEmpty {
                return SiteAccount(
                    sequence: current.sequence, accountId: current.accountId, type: current.type,
                    email: current.email, displayName: current.displayName, products: wanted)
            }
        }
        throw AccountStoreError("the account's products kept changing during a grant; try again")
    }

    public func createGroup(named name: String) async throws -> GroupCreation {
        let groupId = AccountIdentifier.groupId()
        let rows = try await writer.query(
            "INSERT INTO site_groups (group_id, name, name_key) VALUES (?, ?, ?) ON CONFLICT (name_key) DO NOTHING RETURNING group_id",
            [.text(groupId), .text(name), .text(name.lowercased())])
        if !rows.isEmpty { return .created(SiteGroup(groupId: groupId, name: name)) }
        guard let existing = try await group(named: name, on: writer) else {
            throw AccountStoreError("a group conflicted on insert but cannot be read back")
        }
        return .existing(existing)
    }

    public func group(withId groupId: String) async throws -> SiteGroup? {
        let rows = try await reader.query("SELECT group_id, name FROM site_groups WHERE group_id = ?", [.text(groupId)])
        return try rows.first.map(Self.group(from:))
    }

    public func group(named name: String) async throws -> SiteGroup? {
        try await group(named: name, on: reader)
    }

    private func group(named name: String, on connection: SQLiteConnection) async throws -> SiteGroup? {
        let rows = try await connection.query(
            "SELECT group_id, name FROM site_groups WHERE name_key = ?", [.text(name.lowercased())])
        return try rows.first.map(Self.group(from:))
    }

    /// Removes the group and its memberships in one `BEGIN IMMEDIATE` transaction on a connection
    /// opened for it and closed after: the shared writer cannot hold a transaction, since statements
    /// other requests send it meanwhile would join it (and vanish with it on a rollback). The
    /// transaction holds SQLite's write lock throughout, so the writer's statements wait for it
    /// (`busy_timeout`) and no membership can be added between the two deletions.
    public func deleteGroup(withId groupId: String) async throws -> Bool {
        let connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        do {
            try await Self.configure(connection)
            let deleted = try await Self.deleteGroup(withId: groupId, on: connection)
            try await Self.close(connection)
            return deleted
        } catch {
            // Closing also rolls back a transaction left open by a failure or a cancellation.
            try? await Self.close(connection)
            throw error
        }
    }

    /// The transaction of `deleteGroup(withId:)`; `false` when no group has this id.
    private static func deleteGroup(withId groupId: String, on connection: SQLiteConnection) async throws -> Bool {
        _ = try await connection.query("BEGIN IMMEDIATE")
        do {
            _ = try await connection.query("DELETE FROM site_group_members WHERE group_id = ?", [.text(groupId)])
            let rows = try await connection.query(
                "DELETE FROM site_groups WHERE group_id = ? RETURNING group_id", [.text(groupId)])
            _ = try await connection.query("COMMIT")
            return !rows.isEmpty
        } catch {
            _ = try? await connection.query("ROLLBACK")
            throw error
        }
    }

    /// Closes a connection with the future-based close, which runs even when the task is cancelled
    /// (an unclosed connection would trap in its deinit).
    private static func close(_ connection: SQLiteConnection) async throws {
        let closed: EventLoopFuture<Void> = connection.close()
        try await closed.get()
    }

    public func addMember(accountId: String, groupId: String) async throws -> MembershipResult {
        let rows = try await writer.query(
            "INSERT INTO site_group_members (group_id, account_id) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING group_id",
            [.text(groupId), .text(accountId)])
        return rows.isEmpty ? .alreadyMember : .added
    }

    public func members(ofGroupId groupId: String, startAt: Int, limit: Int) async throws -> SiteMemberPage? {
        let connection = reader
        let groups = try await connection.query(
            "SELECT (SELECT count(*) FROM site_group_members WHERE group_id = ?) AS members FROM site_groups "
                + "WHERE group_id = ?", [.text(groupId), .text(groupId)])
        guard let total = groups.first?.column("members")?.integer else { return nil }
        let rows = try await connection.query(
            "SELECT a.seq, a.account_id, a.email, a.account_type, a.display_name, a.products "
                + "FROM site_group_members m JOIN site_accounts a ON a.account_id = m.account_id "
                + "WHERE m.group_id = ? ORDER BY a.seq LIMIT ? OFFSET ?",
            [.text(groupId), .integer(max(0, limit)), .integer(max(0, startAt))])
        return SiteMemberPage(accounts: try rows.map(Self.account(from:)), total: total)
    }

    public func counts() async throws -> SiteCounts {
        let rows = try await reader.query(
            """
            SELECT
              (SELECT count(*) FROM site_accounts WHERE account_type = 'atlassian') AS atlassian,
              (SELECT count(*) FROM site_accounts WHERE account_type = 'customer') AS customer,
              (SELECT count(*) FROM site_groups) AS groups,
              (SELECT count(*) FROM site_group_members) AS members
            """)
        guard let row = rows.first else { throw AccountStoreError("the counts query returned no row") }
        return SiteCounts(
            atlassianAccounts: row.column("atlassian")?.integer ?? 0,
            customerAccounts: row.column("customer")?.integer ?? 0,
            groups: row.column("groups")?.integer ?? 0,
            groupMemberships: row.column("members")?.integer ?? 0)
    }

    public func accounts(after sequence: Int64, limit: Int) async throws -> [SiteAccount] {
        let rows = try await reader.query(
            "SELECT seq, account_id, email, account_type, display_name, products FROM site_accounts WHERE seq > ? ORDER BY seq LIMIT ?",
            [.integer(Int(sequence)), .integer(limit)])
        return try rows.map(Self.account(from:))
    }

    private static func account(from row: SQLiteRow) throws -> SiteAccount {
        guard let seq = row.column("seq")?.integer, let id = row.column("account_id")?.string,
            let email = row.column("email")?.string, let name = row.column("display_name")?.string
        else { throw AccountStoreError("an account row is incomplete") }
        return SiteAccount(
            sequence: Int64(seq), accountId: id, type: try .fromColumn(row.column("account_type")?.string),
            email: email, displayName: name, products: JiraProduct.fromColumn(row.column("products")?.string))
    }

    private static func group(from row: SQLiteRow) throws -> SiteGroup {
        guard let id = row.column("group_id")?.string, let name = row.column("name")?.string else {
            throw AccountStoreError("a group row is incomplete")
        }
        return SiteGroup(groupId: id, name: name)
    }
}
