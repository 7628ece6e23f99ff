import JSMCloud
import JSMCloudSite
import JSMDomain
import Testing

/// `createAtlassianAccount` through the adapter against the local site, which answers
/// `POST /rest/api/3/user` as Atlassian documents it (201 for an existing account with Jira
/// access, 400 for one without): creation, linking, second accounts and concurrent creators.
@Suite("Atlassian account creation through the adapter")
struct AtlassianAccountTests {
    @Test("a new email gets a new Atlassian account without product access", arguments: StoreKind.allCases)
    func newEmailIsCreated(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let email = try #require(NormalizedEmail("New.Agent@Example.com"))
            let result = try await site.withAdapter { adapter in
                try await adapter.createAtlassianAccount(email: email, displayName: "New Agent")
            }
            guard case .created(let account) = result else {
                Issue.record("expected a creation, got \(result)")
                return
            }
            #expect(account.type == .atlassian)
            let stored = try #require(try await site.store.account(withId: account.accountId))
            #expect(stored.email == "new.agent@example.com")
            #expect(stored.type == .atlassian)
            // The migration never gives a licence: `products: []`.
            #expect(stored.products.isEmpty)
            let counts = try await site.store.counts()
            #expect(counts.atlassianAccounts == 1 && counts.customerAccounts == 0)
        }
    }

    @Test(
        "after the caller's own search, a customer-only email gets an Atlassian account and an Atlassian one is linked",
        arguments: StoreKind.allCases)
    func creationAfterTheCallersSearch(kind: StoreKind) async throws {
        let customerOnly = try #require(NormalizedEmail("customer.only@example.com"))
        let hasAtlassian = try #require(NormalizedEmail("has.atlassian@example.com"))
        let seed = [
            NewSiteAccount(type: .customer, email: customerOnly, displayName: "Customer"),
            NewSiteAccount(type: .atlassian, email: hasAtlassian, displayName: "Agent"),
        ]
        try await SiteHarness.withSite(kind, seed: seed) { site in
            try await site.withAdapter { adapter in
                let found = try await adapter.accounts(withEmail: customerOnly)
                #expect(found.map(\.type) == [.customer])
                let created = try await adapter.createAtlassianAccount(
                    email: customerOnly, displayName: "Customer", afterSearchFound: found)
                #expect(created.isCreated && created.account.type == .atlassian)
                let existing = try await adapter.accounts(withEmail: hasAtlassian)
                let linked = try await adapter.createAtlassianAccount(
                    email: hasAtlassian, displayName: "Agent", afterSearchFound: existing)
                #expect(linked == .linked(try #require(existing.first)))
            }
            let counts = try await site.store.counts()
            #expect(counts.atlassianAccounts == 2 && counts.customerAccounts == 1)
        }
    }

    @Test(
        "an existing Atlassian account without Jira access (the site answers 400) is linked, not duplicated",
        arguments: StoreKind.allCases)
    func existingWithoutAccessIsLinked(kind: StoreKind) async throws {
        let email = try #require(NormalizedEmail("seeded@example.com"))
        let seed = [NewSiteAccount(type: .atlassian, email: email, displayName: "Seeded")]
        try await SiteHarness.withSite(kind, seed: seed) { site in
            let seeded = try await site.store.accounts(withEmail: email.value)
            #expect(seeded.count == 1 && seeded.first?.hasProductAccess == false)
            // What the adapter meets when another worker created the account in between: the
            // creation itself answered 400.
            let direct = try await SiteHarness.request(
                site, .POST, "/rest/api/3/user", body: #"{"emailAddress":"seeded@example.com","products":[]}"#)
            #expect(direct.status == 400)

            let (result, metrics) = try await site.withAdapter { adapter in
                (
                    try await adapter.createAtlassianAccount(email: email, displayName: "Seeded"),
                    adapter.metrics.snapshot
                )
            }
            #expect(
                result
                    == .linked(ExistingCloudAccount(accountId: try #require(seeded.first).accountId, type: .atlassian)))
            #expect(metrics.failures == 0 && metrics.accountsLinked == 1 && metrics.accountsCreated == 0)
            let counts = try await site.store.counts()
            #expect(counts.atlassianAccounts == 1)
        }
    }

    @Test(
        "an existing Atlassian account with Jira access (the site answers 201 with it) is linked, not counted as created",
        arguments: StoreKind.allCases)
    func existingWithAccessIsLinked(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let licensed = try await SiteHarness.request(
                site, .POST, "/rest/api/3/user",
                body: #"{"emailAddress":"agent@example.com","products":["jira-servicedesk"]}"#)
            #expect(licensed.status == 201)
            let accountId = try #require(licensed.object["accountId"] as? String)
            // Atlassian's documented answer for an existing account with access: 201 and the account.
            let again = try await SiteHarness.request(
                site, .POST, "/rest/api/3/user", body: #"{"emailAddress":"agent@example.com","products":[]}"#)
            #expect(again.status == 201)
            #expect(again.object["accountId"] as? String == accountId)

            let email = try #require(NormalizedEmail("agent@example.com"))
            let result = try await site.withAdapter { adapter in
                try await adapter.createAtlassianAccount(email: email, displayName: "Agent")
            }
            #expect(result == .linked(ExistingCloudAccount(accountId: accountId, type: .atlassian)))
            let counts = try await site.store.counts()
            #expect(counts.atlassianAccounts == 1)
        }
    }

    @Test(
        "an email with only a customer account gets a second, Atlassian, account",
        arguments: StoreKind.allCases)
    func customerAccountDoesNotCount(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let email = try #require(NormalizedEmail("portal@example.com"))
            let (customer, atlassian) = try await site.withAdapter { adapter in
                let customer = try await adapter.createCustomer(email: email, displayName: "Portal")
                let atlassian = try await adapter.createAtlassianAccount(email: email, displayName: "Portal")
                return (customer, atlassian)
            }
            #expect(customer.isCreated && customer.account.type == .customer)
            #expect(atlassian.isCreated)
            #expect(atlassian.account.type == .atlassian)
            #expect(atlassian.account.accountId != customer.account.accountId)
            let counts = try await site.store.counts()
            #expect(counts.atlassianAccounts == 1 && counts.customerAccounts == 1)
        }
    }

    @Test(
        "50 concurrent creators of one Atlassian account end with one account: one created, 49 linked to it",
        arguments: StoreKind.allCases)
    func concurrentCreators(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let email = try #require(NormalizedEmail("crowd.agent@example.com"))
            let (results, metrics) = try await site.withAdapter { adapter in
                let results = try await withThrowingTaskGroup(of: AccountProvisioning.self) { group in
                    for index in 0..<50 {
                        group.addTask {
                            try await adapter.createAtlassianAccount(email: email, displayName: "Creator \(index)")
                        }
                    }
                    var results: [AccountProvisioning] = []
                    for try await result in group { results.append(result) }
                    return results
                }
                return (results, adapter.metrics.snapshot)
            }
            #expect(results.count == 50)
            #expect(results.filter(\.isCreated).count == 1)
            #expect(Set(results.map(\.account)).count == 1)
            #expect(results.allSatisfy { $0.account.type == .atlassian })
            #expect(metrics.failures == 0)
            let counts = try await site.store.counts()
            #expect(counts.atlassianAccounts == 1 && counts.customerAccounts == 0)
        }
    }

    @Test("a 400 that is not about an existing account stays a refusal", arguments: [StoreKind.sqlite])
    func invalidEmailIsRefused(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let email = try #require(NormalizedEmail("no-at-sign"))
            try await site.withAdapter { adapter in
                let error = await #expect(throws: CloudSiteError.self) {
                    _ = try await adapter.createAtlassianAccount(email: email, displayName: "Nobody")
                }
                #expect(error?.code == .invalidRequest)
                #expect(error?.status == 400)
                #expect(error?.path == "POST /rest/api/3/user")
            }
            let counts = try await site.store.counts()
            #expect(counts.atlassianAccounts == 0)
        }
    }
}
