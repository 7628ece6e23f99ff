import Foundation
import JSMCloudSite
import JSMDomain
import PostgresNIO
import Testing

/// A site's store made by an earlier version (accounts without product access) keeps working.
@Suite("Store upgrade")
struct StoreUpgradeTests {
    @Test("a PostgreSQL schema made before product access gains the column, and its accounts have no access")
    func postgresGainsProducts() async throws {
        let schema = "site_upgrade_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        let client = PostgresClient(configuration: try SiteHarness.postgresConfiguration())
        let logger = SiteHarness.logger
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            let old = [
                "CREATE SCHEMA \(schema)",
                """
                CREATE TABLE \(schema).site_accounts (
                    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    account_id TEXT NOT NULL UNIQUE,
                    email TEXT NOT NULL,
                    account_type TEXT NOT NULL,
                    display_name TEXT NOT NULL,
                    UNIQUE (email, account_type))
                """,
                "INSERT INTO \(schema).site_accounts (account_id, email, account_type, display_name) "
                    + "VALUES ('712020:old', 'old@example.com', 'atlassian', 'Old')",
            ]
            for statement in old { try await client.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
            let store = try PostgresAccountStore(client: client, schema: String(schema), logger: logger)
            do {
                try await store.prepare()
                let existing = try await store.accounts(withEmail: "old@example.com")
                #expect(existing.map(\.accountId) == ["712020:old"])
                #expect(existing.first?.hasProductAccess == false)
                let email = try #require(NormalizedEmail("new@example.com"))
                let created = try await store.insertAccounts([
                    NewSiteAccount(type: .atlassian, email: email, displayName: "New", products: ["jira-core"])
                ])
                guard case .created(let account) = created.first else {
                    Issue.record("expected a creation, got \(created)")
                    return
                }
                #expect(try await store.account(withId: account.accountId)?.products == ["jira-core"])
                let granted = try await store.grantProducts(["jira-software"], toAccountId: "712020:old")
                #expect(granted?.products == ["jira-software"])
                try await store.dropSchema()
            } catch {
                try? await store.dropSchema()
                throw error
            }
        }
    }
}
