import Foundation
import JSMCloud
import JSMCloudSite
import JSMDomain
import NIOHTTP1
import Testing

/// Atlassian's endpoints on the local site, over the wire, on both stores.
@Suite("Cloud site endpoints")
struct SiteEndpointTests {
    @Test("creating a customer answers 201 with Atlassian's UserDTO", arguments: StoreKind.allCases)
    func createCustomer(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let answer = try await SiteHarness.request(
                site, .POST, "/rest/servicedeskapi/customer?strictConflictStatusCode=true",
                body: #"{"email":" Ann.Lee@Example.COM ","displayName":"Ann Lee"}"#)
            #expect(answer.status == 201)
            let user = answer.object
            let accountId = try #require(user["accountId"] as? String)
            #expect(accountId.hasPrefix("qm:"))
            #expect(user["emailAddress"] as? String == "ann.lee@example.com")
            #expect(user["displayName"] as? String == "Ann Lee")
            #expect(user["active"] as? Bool == true)
            #expect(user["timeZone"] as? String != nil)
            #expect(user["name"] as? String != nil && user["key"] as? String != nil)
            #expect((user["_links"] as? [String: Any])?["self"] as? String != nil)
        }
    }

    @Test("an existing email gets 409 with strictConflictStatusCode and 400 without", arguments: StoreKind.allCases)
    func customerConflict(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let body = #"{"email":"bo@example.com","displayName":"Bo"}"#
            let first = try await SiteHarness.request(
                site, .POST, "/rest/servicedeskapi/customer?strictConflictStatusCode=true", body: body)
            #expect(first.status == 201)
            let strict = try await SiteHarness.request(
                site, .POST, "/rest/servicedeskapi/customer?strictConflictStatusCode=true", body: body)
            #expect(strict.status == 409)
            #expect(strict.errorText.contains("already exists"))
            let lenient = try await SiteHarness.request(site, .POST, "/rest/servicedeskapi/customer", body: body)
            #expect(lenient.status == 400)
            let counts = try await site.store.counts()
            #expect(counts.customerAccounts == 1)
        }
    }

    @Test("bad input gets 400 with a message naming the problem", arguments: StoreKind.allCases)
    func badInput(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let path = "/rest/servicedeskapi/customer?strictConflictStatusCode=true"
            let malformed = try await SiteHarness.request(site, .POST, path, body: #"{"email": "x@example.com","#)
            #expect(malformed.status == 400)
            #expect(malformed.errorText.contains("not valid JSON"))

            let wrongType = try await SiteHarness.request(
                site, .POST, path, body: #"{"email": 42, "displayName": "N"}"#)
            #expect(wrongType.status == 400)
            #expect(wrongType.errorText.contains("'email' must be a string"))

            let missing = try await SiteHarness.request(site, .POST, path, body: #"{"displayName": "No Email"}"#)
            #expect(missing.status == 400)
            #expect(missing.errorText.contains("'email' is required"))

            let invalid = try await SiteHarness.request(site, .POST, path, body: #"{"email": "not-an-email"}"#)
            #expect(invalid.status == 400)
            #expect(invalid.errorText.contains("not a valid email"))

            let huge = String(repeating: "x", count: 1 << 20)
            let hugeName = try await SiteHarness.request(
                site, .POST, path, body: #"{"email": "big@example.com", "displayName": "\#(huge)"}"#)
            #expect(hugeName.status == 400)
            #expect(hugeName.errorText.contains("at most 255 characters"))

            let userWrongType = try await SiteHarness.request(
                site, .POST, "/rest/api/3/user", body: #"{"emailAddress": "u@example.com", "products": "jira"}"#)
            #expect(userWrongType.status == 400)
            #expect(userWrongType.errorText.contains("'products' must be an array"))

            let empty = try await SiteHarness.request(site, .POST, "/rest/api/3/group", body: "")
            #expect(empty.status == 400)

            let counts = try await site.store.counts()
            #expect(counts.customerAccounts + counts.atlassianAccounts == 0)
        }
    }

    @Test("user search finds both account types by normalised email, Atlassian first", arguments: StoreKind.allCases)
    func userSearch(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let customer = try await SiteHarness.request(
                site, .POST, "/rest/servicedeskapi/customer", body: #"{"email":"cy@example.com","displayName":"Cy"}"#)
            #expect(customer.status == 201)
            let user = try await SiteHarness.request(
                site, .POST, "/rest/api/3/user",
                body: #"{"emailAddress":"CY@example.com","displayName":"Cy","products":[]}"#)
            #expect(user.status == 201)
            #expect(user.object["accountType"] as? String == "atlassian")

            let found = try await SiteHarness.request(site, .GET, "/rest/api/3/user/search?query=Cy%40Example.com")
            #expect(found.status == 200)
            #expect(found.array.map { $0["accountType"] as? String } == ["atlassian", "customer"])
            #expect(found.array.allSatisfy { $0["emailAddress"] as? String == "cy@example.com" })
            #expect(found.array.allSatisfy { $0["active"] as? Bool == true && $0["accountId"] is String })

            let none = try await SiteHarness.request(site, .GET, "/rest/api/3/user/search?query=nobody%40example.com")
            #expect(none.status == 200 && none.array.isEmpty)

            let noQuery = try await SiteHarness.request(site, .GET, "/rest/api/3/user/search")
            #expect(noQuery.status == 400)

            let byId = try await SiteHarness.request(
                site, .GET, "/rest/api/3/user?accountId=\(user.object["accountId"] as? String ?? "")")
            #expect(byId.status == 200 && byId.object["accountType"] as? String == "atlassian")
            let unknown = try await SiteHarness.request(site, .GET, "/rest/api/3/user?accountId=nope")
            #expect(unknown.status == 404)
        }
    }

    @Test(
        "create user answers as Atlassian documents: 400 for an existing account without Jira access, 201 with it",
        arguments: StoreKind.allCases)
    func atlassianAccountRules(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let body = #"{"emailAddress":"di@example.com","displayName":"Di","products":[]}"#
            let customer = try await SiteHarness.request(
                site, .POST, "/rest/servicedeskapi/customer", body: #"{"email":"di@example.com","displayName":"Di"}"#)
            #expect(customer.status == 201)
            // A customer account does not count: the email gets a second, Atlassian, account.
            let first = try await SiteHarness.request(site, .POST, "/rest/api/3/user", body: body)
            #expect(first.status == 201)
            #expect(first.object["accountType"] as? String == "atlassian")
            let accountId = try #require(first.object["accountId"] as? String)
            #expect(accountId != customer.object["accountId"] as? String)

            // It exists without access to Jira and the request names no product: 400, nothing made.
            let second = try await SiteHarness.request(site, .POST, "/rest/api/3/user", body: body)
            #expect(second.status == 400)
            #expect(second.errorText.contains("already exists"))
            #expect(second.object["errors"] as? [String: String] == [:])

            // Naming a product gives the existing account access: 201 with that same account.
            let granted = try await SiteHarness.request(
                site, .POST, "/rest/api/3/user",
                body: #"{"emailAddress":"DI@example.com","products":["jira-servicedesk"]}"#)
            #expect(granted.status == 201)
            #expect(granted.object["accountId"] as? String == accountId)
            #expect(granted.object["displayName"] as? String == "Di")

            // Now it has access: 201 with the same account, even with no product named.
            let again = try await SiteHarness.request(site, .POST, "/rest/api/3/user", body: body)
            #expect(again.status == 201)
            #expect(again.object["accountId"] as? String == accountId)
            let stored = try #require(try await site.store.account(withId: accountId))
            #expect(stored.products == ["jira-servicedesk"])

            let unknownProduct = try await SiteHarness.request(
                site, .POST, "/rest/api/3/user", body: #"{"emailAddress":"pr@example.com","products":["jira-x"]}"#)
            #expect(unknownProduct.status == 400)
            #expect(unknownProduct.errorText.contains("'jira-x' is not valid"))

            // A customer is never created beside an Atlassian account.
            let another = try await SiteHarness.request(
                site, .POST, "/rest/servicedeskapi/customer?strictConflictStatusCode=true",
                body: #"{"email":"ed@example.com","displayName":"Ed"}"#)
            #expect(another.status == 201)
            _ = try await SiteHarness.request(
                site, .POST, "/rest/api/3/user", body: #"{"emailAddress":"fi@example.com"}"#)
            let customerAfterAtlassian = try await SiteHarness.request(
                site, .POST, "/rest/servicedeskapi/customer?strictConflictStatusCode=true",
                body: #"{"email":"fi@example.com"}"#)
            #expect(customerAfterAtlassian.status == 409)
            let counts = try await site.store.counts()
            #expect(counts.atlassianAccounts == 2)
            #expect(counts.customerAccounts == 2)
        }
    }

    @Test(
        "groups: create, duplicate name, bulk lookup, add member, existing member, unknown group",
        arguments: StoreKind.allCases)
    func groups(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let created = try await SiteHarness.request(
                site, .POST, "/rest/api/3/group", body: #"{"name":"service-desk-agents"}"#)
            #expect(created.status == 201)
            let groupId = try #require(created.object["groupId"] as? String)
            #expect(created.object["name"] as? String == "service-desk-agents")

            let duplicate = try await SiteHarness.request(
                site, .POST, "/rest/api/3/group", body: #"{"name":"Service-Desk-Agents"}"#)
            #expect(duplicate.status == 400)
            #expect(duplicate.errorText.contains("already used"))

            let bulk = try await SiteHarness.request(site, .GET, "/rest/api/3/group/bulk?groupName=SERVICE-DESK-AGENTS")
            let values = bulk.object["values"] as? [[String: Any]] ?? []
            #expect(values.map { $0["groupId"] as? String } == [groupId])

            let user = try await SiteHarness.request(
                site, .POST, "/rest/api/3/user", body: #"{"emailAddress":"gu@example.com"}"#)
            let accountId = try #require(user.object["accountId"] as? String)
            let member = #"{"accountId":"\#(accountId)"}"#
            let added = try await SiteHarness.request(
                site, .POST, "/rest/api/3/group/user?groupId=\(groupId)", body: member)
            #expect(added.status == 201)
            let again = try await SiteHarness.request(
                site, .POST, "/rest/api/3/group/user?groupname=service-desk-agents", body: member)
            #expect(again.status == 400)
            #expect(again.errorText.contains("already a member"))
            let noGroup = try await SiteHarness.request(
                site, .POST, "/rest/api/3/group/user?groupId=missing", body: member)
            #expect(noGroup.status == 404)
            let noUser = try await SiteHarness.request(
                site, .POST, "/rest/api/3/group/user?groupId=\(groupId)", body: #"{"accountId":"nobody"}"#)
            #expect(noUser.status == 404)
            let both = try await SiteHarness.request(
                site, .POST, "/rest/api/3/group/user?groupId=\(groupId)&groupname=x", body: member)
            #expect(both.status == 400)

            let counts = try await site.store.counts()
            #expect(counts.groups == 1 && counts.groupMemberships == 1)
        }
    }

    @Test(
        "group members: pages of at most 50 with total, isLast and nextPage; unknown group 404; bad paging 400",
        arguments: StoreKind.allCases)
    func groupMembers(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let created = try await SiteHarness.request(
                site, .POST, "/rest/api/3/group", body: #"{"name":"Agents"}"#)
            let groupId = try #require(created.object["groupId"] as? String)
            var members: [String] = []
            for index in 0..<60 {
                let user = try await SiteHarness.request(
                    site, .POST, "/rest/api/3/user", body: #"{"emailAddress":"member\#(index)@example.com"}"#)
                let accountId = try #require(user.object["accountId"] as? String)
                let added = try await SiteHarness.request(
                    site, .POST, "/rest/api/3/group/user?groupId=\(groupId)", body: #"{"accountId":"\#(accountId)"}"#)
                #expect(added.status == 201)
                members.append(accountId)
            }
            // maxResults above 50 is capped, as Atlassian caps it.
            let first = try await SiteHarness.request(
                site, .GET, "/rest/api/3/group/member?groupId=\(groupId)&maxResults=1000")
            #expect(first.status == 200)
            #expect(first.object["total"] as? Int == 60 && first.object["maxResults"] as? Int == 50)
            #expect(first.object["isLast"] as? Bool == false && first.object["startAt"] as? Int == 0)
            let firstValues = first.object["values"] as? [[String: Any]] ?? []
            #expect(firstValues.count == 50)
            #expect(firstValues.first?["accountType"] as? String == "atlassian")
            let next = try #require(first.object["nextPage"] as? String)
            #expect(next.hasSuffix("startAt=50"))
            let second = try await SiteHarness.request(
                site, .GET, "/rest/api/3/group/member?groupname=AGENTS&startAt=50&maxResults=50")
            #expect(second.status == 200)
            #expect(second.object["isLast"] as? Bool == true && second.object["nextPage"] == nil)
            let secondValues = second.object["values"] as? [[String: Any]] ?? []
            let listed = (firstValues + secondValues).compactMap { $0["accountId"] as? String }
            #expect(listed == members, "every member once, in creation order")
            let past = try await SiteHarness.request(
                site, .GET, "/rest/api/3/group/member?groupId=\(groupId)&startAt=500")
            #expect(past.status == 200 && (past.object["values"] as? [[String: Any]])?.isEmpty == true)
            #expect(past.object["isLast"] as? Bool == true)

            let unknown = try await SiteHarness.request(site, .GET, "/rest/api/3/group/member?groupId=missing")
            #expect(unknown.status == 404)
            for query in [
                "", "groupId=\(groupId)&groupname=agents", "groupId=\(groupId)&startAt=-1",
                "groupId=\(groupId)&maxResults=0", "groupId=\(groupId)&startAt=x",
            ] {
                let bad = try await SiteHarness.request(site, .GET, "/rest/api/3/group/member?" + query)
                #expect(bad.status == 400, "\(query)")
            }
            let counts = try await site.store.counts()
            #expect(counts.groups == 1 && counts.groupMemberships == 60, "listing members changes nothing")
        }
    }

    @Test(
        "bulk user lookup: the named accounts the site holds, in the order named, paged; unknown ids left out; bad input 400",
        arguments: StoreKind.allCases)
    func bulkUsers(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let user = try await SiteHarness.request(
                site, .POST, "/rest/api/3/user", body: #"{"emailAddress":"bulk-a@example.com"}"#)
            let customer = try await SiteHarness.request(
                site, .POST, "/rest/servicedeskapi/customer", body: #"{"email":"bulk-b@example.com","displayName":"B"}"#
            )
            let a = try #require(user.object["accountId"] as? String)
            let b = try #require(customer.object["accountId"] as? String)
            let named = "accountId=\(b)&accountId=missing&accountId=\(a)&accountId=\(b)"
            let all = try await SiteHarness.request(site, .GET, "/rest/api/3/user/bulk?" + named)
            #expect(all.status == 200)
            #expect(all.object["total"] as? Int == 2 && all.object["isLast"] as? Bool == true)
            #expect(all.object["maxResults"] as? Int == 10 && all.object["nextPage"] == nil)
            let values = all.object["values"] as? [[String: Any]] ?? []
            #expect(values.compactMap { $0["accountId"] as? String } == [b, a])
            #expect(values.compactMap { $0["accountType"] as? String } == ["customer", "atlassian"])
            #expect(
                values.compactMap { $0["emailAddress"] as? String } == ["bulk-b@example.com", "bulk-a@example.com"])

            let first = try await SiteHarness.request(site, .GET, "/rest/api/3/user/bulk?" + named + "&maxResults=1")
            #expect(first.object["isLast"] as? Bool == false && first.object["total"] as? Int == 2)
            #expect((first.object["values"] as? [[String: Any]])?.compactMap { $0["accountId"] as? String } == [b])
            #expect((first.object["nextPage"] as? String)?.hasSuffix("startAt=1") == true)
            let second = try await SiteHarness.request(
                site, .GET, "/rest/api/3/user/bulk?" + named + "&maxResults=1&startAt=1")
            #expect(second.object["isLast"] as? Bool == true)
            #expect((second.object["values"] as? [[String: Any]])?.compactMap { $0["accountId"] as? String } == [a])
            // maxResults above the site's page limit is capped.
            let capped = try await SiteHarness.request(
                site, .GET, "/rest/api/3/user/bulk?" + named + "&maxResults=5000")
            #expect(capped.object["maxResults"] as? Int == 100)

            let none = try await SiteHarness.request(site, .GET, "/rest/api/3/user/bulk?accountId=missing")
            #expect(none.status == 200 && none.object["total"] as? Int == 0 && none.object["isLast"] as? Bool == true)
            for query in [
                "", "maxResults=5", "accountId=\(a)&startAt=-1", "accountId=\(a)&maxResults=0",
                "accountId=\(a)&startAt=x",
            ] {
                let bad = try await SiteHarness.request(site, .GET, "/rest/api/3/user/bulk?" + query)
                #expect(bad.status == 400, "\(query)")
            }
        }
    }

    @Test("every endpoint refuses a request without the token or with a wrong one (401)", arguments: StoreKind.allCases)
    func authentication(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let endpoints: [(HTTPMethodName, String)] = [
                (.post, "/rest/servicedeskapi/customer"), (.get, "/rest/api/3/user/search?query=a%40b.co"),
                (.post, "/rest/api/3/user"), (.post, "/rest/api/3/group"), (.post, "/rest/api/3/group/user?groupId=x"),
                (.get, "/rest/api/3/group/member?groupId=x"), (.delete, "/rest/api/3/group?groupId=x"),
                (.get, "/rest/api/3/user/bulk?accountId=x"),
                (.get, "/_local/v1/counts"), (.get, "/_local/v1/accounts"),
            ]
            for (method, path) in endpoints {
                let body =
                    method == .post ? #"{"email":"a@b.co","emailAddress":"a@b.co","name":"g","accountId":"x"}"# : nil
                let anonymous = try await SiteHarness.request(site, method.http, path, body: body, token: .none)
                #expect(anonymous.status == 401, "\(path) without a token")
                #expect(anonymous.headers.first(name: "WWW-Authenticate") != nil)
                let wrong = try await SiteHarness.request(
                    site, method.http, path, body: body, token: .some("not-the-token"))
                #expect(wrong.status == 401, "\(path) with a wrong token")
            }
            let counts = try await site.store.counts()
            #expect(counts == SiteCounts(atlassianAccounts: 0, customerAccounts: 0, groups: 0, groupMemberships: 0))
        }
    }

    @Test(
        "the site's own verification endpoints count by type and page through every account",
        arguments: StoreKind.allCases)
    func verificationEndpoints(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            for index in 0..<5 {
                let answer = try await SiteHarness.request(
                    site, .POST, "/rest/servicedeskapi/customer", body: #"{"email":"v\#(index)@example.com"}"#)
                #expect(answer.status == 201)
            }
            _ = try await SiteHarness.request(
                site, .POST, "/rest/api/3/user", body: #"{"emailAddress":"v0@example.com"}"#)
            let counts = try await SiteHarness.request(site, .GET, "/_local/v1/counts")
            let accounts = counts.object["accounts"] as? [String: Any]
            #expect(accounts?["customer"] as? Int == 5)
            #expect(accounts?["atlassian"] as? Int == 1)
            #expect(accounts?["total"] as? Int == 6)
            // Six Atlassian API requests so far; the site's own endpoints are not counted.
            #expect(counts.object["apiRequests"] as? Int == 6)
            let again = try await SiteHarness.request(site, .GET, "/_local/v1/counts")
            #expect(again.object["apiRequests"] as? Int == 6)

            var seen: [String] = []
            var cursor = ""
            for _ in 0..<10 {
                let page = try await SiteHarness.request(site, .GET, "/_local/v1/accounts?limit=4&cursor=\(cursor)")
                #expect(page.status == 200)
                seen += (page.object["accounts"] as? [[String: Any]] ?? []).compactMap { $0["accountId"] as? String }
                guard let next = page.object["nextCursor"] as? String else { break }
                cursor = next
            }
            #expect(seen.count == 6)
            #expect(Set(seen).count == 6)
            let badCursor = try await SiteHarness.request(site, .GET, "/_local/v1/accounts?cursor=abc")
            #expect(badCursor.status == 400)
        }
    }

    @Test("seeded accounts exist before the first request", arguments: StoreKind.allCases)
    func seededAccounts(kind: StoreKind) async throws {
        let seed = try SeedAccounts.parse(
            "email,displayName,accountType\nseed@example.com,\"Seed, Atlassian\",atlassian\nseed@example.com,Seed,customer\n",
            fileName: "seed.csv")
        try await SiteHarness.withSite(kind, seed: seed) { site in
            let found = try await SiteHarness.request(site, .GET, "/rest/api/3/user/search?query=seed%40example.com")
            #expect(found.array.map { $0["accountType"] as? String } == ["atlassian", "customer"])
            #expect(found.array.first?["displayName"] as? String == "Seed, Atlassian")
        }
    }

    @Test(
        "the database itself keeps one account per (email, type) within and across batches",
        arguments: StoreKind.allCases)
    func storeUniqueness(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let email = try #require(NormalizedEmail("same@example.com"))
            let batch =
                (0..<4).map { _ in NewSiteAccount(type: .customer, email: email, displayName: "Same") }
                + [NewSiteAccount(type: .atlassian, email: email, displayName: "Same")]
            let first = try await site.store.insertAccounts(batch)
            let created = first.compactMap { if case .created(let account) = $0 { account } else { nil } }
            #expect(created.count == 2)
            let existing = first.compactMap { if case .existing(let account) = $0 { account } else { nil } }
            #expect(existing.count == 3)
            #expect(Set(existing.map(\.accountId)).count == 1)
            let second = try await site.store.insertAccounts([
                NewSiteAccount(type: .customer, email: email, displayName: "Again")
            ])
            #expect(second.allSatisfy { if case .existing = $0 { true } else { false } })
            let counts = try await site.store.counts()
            #expect(counts.customerAccounts == 1 && counts.atlassianAccounts == 1)
        }
    }
}

/// The methods the endpoints use, named for readability in tables of endpoints.
enum HTTPMethodName {
    case get
    case post
    case delete

    var http: NIOHTTP1.HTTPMethod {
        switch self {
        case .get: .GET
        case .post: .POST
        case .delete: .DELETE
        }
    }
}
