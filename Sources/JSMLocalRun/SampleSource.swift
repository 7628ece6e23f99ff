import Foundation
import JSMCloudSite
import JSMDomain
import JSMSource
import JSMSourceFixtures

/// A generated Jira database and the accounts its cloud site already holds (people who have an
/// Atlassian or customer account before the migration starts).
public struct SampleSource: Sendable {
    /// What the generator wrote.
    public let summary: JiraFixtureSummary
    /// The accounts to seed the site with.
    public let siteAccounts: [NewSiteAccount]

    /// Writes a generated Jira database of `users` directory users into a new SQLite file.
    public static func generate(users: Int, seed: UInt64, sqlitePath: String) async throws -> SampleSource {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: sqlitePath + suffix) }
        let database = try await SQLiteSourceDatabase.open(path: sqlitePath)
        let accounts = AccountCollector()
        do {
            let summary = try await JiraFixtureGenerator(users: users, seed: seed).generate(
                into: SQLiteFixtureWriter(database: database)
            ) { account in accounts.append(account) }
            try await database.close()
            return SampleSource(summary: summary, siteAccounts: accounts.accounts)
        } catch {
            try? await database.close()
            throw error
        }
    }
}

/// Collects the generator's site accounts (the generator calls back synchronously, in order).
private final class AccountCollector {
    private(set) var accounts: [NewSiteAccount] = []

    func append(_ account: JSMSourceFixtures.SiteAccount) {
        guard let email = NormalizedEmail(account.email) else { return }
        let type: CloudAccountType = account.accountType == "atlassian" ? .atlassian : .customer
        accounts.append(NewSiteAccount(type: type, email: email, displayName: account.displayName))
    }
}
