import Foundation
import JSMCloud
import JSMCloudSite
import JSMDomain
import Testing

/// The Atlassian REST adapter against the real local site: create-then-link, throttling, failures.
@Suite("Atlassian Cloud adapter")
struct AdapterTests {
    @Test("50 concurrent creators of one email end with one account and 49 links", arguments: StoreKind.allCases)
    func concurrentCreators(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let email = try #require(NormalizedEmail("Crowd@Example.com"))
            let results = try await site.withAdapter { adapter in
                try await withThrowingTaskGroup(of: AccountProvisioning.self) { group in
                    for index in 0..<50 {
                        group.addTask {
                            try await adapter.createCustomer(email: email, displayName: "Creator \(index)")
                        }
                    }
                    var results: [AccountProvisioning] = []
                    for try await result in group { results.append(result) }
                    return results
                }
            }
            #expect(results.filter(\.isCreated).count == 1)
            #expect(results.filter { !$0.isCreated }.count == 49)
            #expect(Set(results.map(\.account.accountId)).count == 1)
            let counts = try await site.store.counts()
            #expect(counts.customerAccounts == 1)
            #expect(counts.atlassianAccounts == 0)
        }
    }

    @Test(
        "a customer links to the email's Atlassian account rather than its customer account",
        arguments: StoreKind.allCases)
    func atlassianWinsForLinking(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let email = try #require(NormalizedEmail("both@example.com"))
            try await site.withAdapter { adapter in
                let customer = try await adapter.createCustomer(email: email, displayName: "Both")
                #expect(customer.isCreated)
                #expect(customer.account.type == .customer)
                // A licensed user with only a customer account gets a second, Atlassian, account.
                let atlassian = try await adapter.createAtlassianAccount(email: email, displayName: "Both")
                #expect(atlassian.isCreated)
                #expect(atlassian.account.type == .atlassian)

                let linked = try await adapter.createCustomer(email: email, displayName: "Both")
                #expect(linked == .linked(atlassian.account))
                let relinked = try await adapter.createAtlassianAccount(email: email, displayName: "Both")
                #expect(relinked == .linked(atlassian.account))
                let found = try await adapter.accounts(withEmail: email)
                #expect(found == [atlassian.account, customer.account])
                #expect(adapter.metrics.snapshot.failures == 0)
            }
        }
    }

    @Test("groups are reused by name and memberships are idempotent", arguments: StoreKind.allCases)
    func groupsThroughTheAdapter(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            try await site.withAdapter { adapter in
                let created = try await adapter.createGroup(named: "jira-servicedesk-users")
                guard case .created(let group) = created else {
                    Issue.record("expected a new group, got \(created)")
                    return
                }
                let reused = try await adapter.createGroup(named: "JIRA-ServiceDesk-Users")
                #expect(reused == .reused(group))
                let email = try #require(NormalizedEmail("member@example.com"))
                let account = try await adapter.createAtlassianAccount(email: email, displayName: "Member").account
                #expect(try await adapter.addMember(accountId: account.accountId, toGroupId: group.groupId) == .added)
                #expect(
                    try await adapter.addMember(accountId: account.accountId, toGroupId: group.groupId)
                        == .alreadyMember)
                await #expect {
                    try await adapter.addMember(accountId: account.accountId, toGroupId: "no-such-group")
                } throws: { error in
                    (error as? CloudSiteError)?.code == .notFound && (error as? CloudSiteError)?.isRetriable == false
                }
            }
        }
    }

    @Test(
        "existingGroupIds: across several bulk lookups of 50, exactly the ids the site still has",
        arguments: StoreKind.allCases)
    func existingGroupIdsThroughTheAdapter(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            try await site.withAdapter { adapter in
                var ids: [String] = []
                for index in 0..<(AtlassianCloudSite.groupIdsPerLookup + 12) {
                    ids.append(try await adapter.createGroup(named: "group-\(index)").group.groupId)
                }
                #expect(try await adapter.existingGroupIds([]) == [])
                #expect(try await adapter.existingGroupIds(ids + ids.prefix(3)) == Set(ids))
                let removed = [ids[0], ids[AtlassianCloudSite.groupIdsPerLookup], ids[ids.count - 1]]
                for groupId in removed {
                    let answer = try await SiteHarness.request(site, .DELETE, "/rest/api/3/group?groupId=\(groupId)")
                    #expect(answer.status == 200)
                }
                let requests = adapter.metrics.snapshot.requests
                let found = try await adapter.existingGroupIds(ids + ["no-such-group"])
                #expect(found == Set(ids).subtracting(removed))
                // 62 ids and an unknown one: two lookups.
                #expect(adapter.metrics.snapshot.requests - requests == 2)
            }
        }
    }

    @Test(
        "read-only group lookups: a group by name in any case, every member across pages, nil for a missing group",
        arguments: StoreKind.allCases)
    func groupLookupsThroughTheAdapter(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            try await site.withAdapter { adapter in
                #expect(try await adapter.group(named: "Agents") == nil)
                let group = try await adapter.createGroup(named: "Agents").group
                #expect(try await adapter.group(named: "AGENTS") == group)
                #expect(try await adapter.memberAccountIds(ofGroupId: group.groupId) == [])
                var members = Set<String>()
                for index in 0..<(GroupMemberPage.largestSize * 2 + 3) {
                    let email = try #require(NormalizedEmail("m\(index)@example.com"))
                    let account = try await adapter.createAtlassianAccount(email: email, displayName: "M").account
                    _ = try await adapter.addMember(accountId: account.accountId, toGroupId: group.groupId)
                    members.insert(account.accountId)
                }
                let counts = try await site.store.counts()
                #expect(try await adapter.memberAccountIds(ofGroupId: group.groupId) == members)
                let page = try #require(
                    try await adapter.groupMembers(ofGroupId: group.groupId, startAt: 100, maxResults: 500))
                #expect(page.accountIds.count == 3 && page.total == members.count && page.isLast)
                #expect(try await adapter.memberAccountIds(ofGroupId: "no-such-group") == nil)
                #expect(try await site.store.counts() == counts, "lookups change nothing")
                #expect(adapter.metrics.snapshot.failures == 0)
            }
        }
    }

    @Test(
        "under a rate limit, 10,000 creations complete with zero failures and the 429s absorbed",
        arguments: StoreKind.allCases)
    func rateLimitedCreations(kind: StoreKind) async throws {
        // A small burst makes the first wave of 64 concurrent creators meet 429s on any machine.
        try await SiteHarness.withSite(kind, requestsPerSecond: 2_000, burst: 10) { site in
            let metrics = try await site.withAdapter(maxConcurrentRequests: 64) { adapter in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    // 64 creators, each working through its share: bounded concurrency, bounded loop.
                    for worker in 0..<64 {
                        group.addTask {
                            for index in stride(from: worker, to: 10_000, by: 64) {
                                guard let email = NormalizedEmail("rate-\(index)@example.com") else { continue }
                                _ = try await adapter.createCustomer(email: email, displayName: "Rate \(index)")
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                return adapter.metrics.snapshot
            }
            #expect(metrics.failures == 0)
            #expect(metrics.accountsCreated == 10_000)
            #expect(metrics.throttledResponses > 0)
            let counts = try await site.store.counts()
            #expect(counts.customerAccounts == 10_000)
        }
    }

    @Test("a 400 from the site is a permanent error carrying status, host and path but not the token")
    func permanentErrors() async throws {
        try await SiteHarness.withSite(.sqlite) { site in
            try await site.withAdapter { adapter in
                let error = await #expect(throws: CloudSiteError.self) {
                    _ = try await adapter.createCustomer(email: NormalizedEmail("no-at-sign")!, displayName: "X")
                }
                #expect(error?.code == .invalidRequest)
                #expect(error?.status == 400)
                #expect(error?.isRetriable == false)
                #expect(error?.path == "POST /rest/servicedeskapi/customer")
                #expect(error?.description.contains(site.token) == false)
                #expect(error?.description.contains("127.0.0.1:\(site.port)") == true)
                #expect(adapter.metrics.snapshot.permanentFailures == 1)
            }
            var wrong = site.adapterConfiguration()
            wrong.apiToken = "wrong-token"
            try await AtlassianCloudSite.withSite(configuration: wrong) { adapter in
                let error = await #expect(throws: CloudSiteError.self) {
                    _ = try await adapter.accounts(withEmail: NormalizedEmail("a@example.com")!)
                }
                #expect(error?.code == .unauthorized)
                #expect(error?.description.contains("wrong-token") == false)
            }
        }
    }

    @Test("an unreachable site is a retriable error naming the host, and nothing is counted as done")
    func unreachableSite() async throws {
        var configuration = AtlassianCloudConfiguration(
            baseURL: "http://127.0.0.1:9/", userEmail: "m@example.com", apiToken: "secret-token")
        configuration.connectTimeout = .seconds(2)
        configuration.requestTimeout = .seconds(4)
        try await AtlassianCloudSite.withSite(configuration: configuration) { adapter in
            let error = await #expect(throws: CloudSiteError.self) {
                _ = try await adapter.createCustomer(email: NormalizedEmail("lost@example.com")!, displayName: "Lost")
            }
            #expect(error?.isRetriable == true)
            #expect(error?.code == .unreachable || error?.code == .timeout)
            #expect(error?.description.contains("127.0.0.1:9") == true)
            #expect(error?.description.contains("secret-token") == false)
            let metrics = adapter.metrics.snapshot
            #expect(metrics.accountsCreated == 0 && metrics.accountsLinked == 0)
            #expect(metrics.retriableFailures == 1)
        }
    }
}
