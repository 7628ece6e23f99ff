import Foundation
import JSMCloudSite
import Testing

/// `DELETE /rest/api/3/group` on the local site, over the wire, on both stores.
@Suite("Cloud site group removal")
struct GroupRemovalTests {
    @Test(
        "removing by id: 200 and no body; gone from bulk, members 404, its name makes a new group",
        arguments: StoreKind.allCases)
    func removeById(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let groupId = try await Self.createGroup(site, named: "Portal-Agents")
            let keptId = try await Self.createGroup(site, named: "Portal-Admins")
            let accountId = try await Self.createUser(site, email: "removal@example.com")
            #expect(try await Self.addMember(site, accountId, toGroupId: groupId).status == 201)
            #expect(try await Self.addMember(site, accountId, toGroupId: keptId).status == 201)

            let removed = try await SiteHarness.request(site, .DELETE, "/rest/api/3/group?groupId=\(groupId)")
            #expect(removed.status == 200)
            #expect(removed.body.isEmpty)

            let bulk = try await SiteHarness.request(
                site, .GET, "/rest/api/3/group/bulk?groupId=\(groupId)&groupName=portal-agents&groupId=\(keptId)")
            #expect(bulk.status == 200)
            let listed = (bulk.object["values"] as? [[String: Any]] ?? []).compactMap { $0["groupId"] as? String }
            #expect(listed == [keptId], "only the group that was not removed")

            let members = try await SiteHarness.request(site, .GET, "/rest/api/3/group/member?groupId=\(groupId)")
            #expect(members.status == 404)
            #expect(members.errorText == "Specified group does not exist.")
            let keptMembers = try await SiteHarness.request(site, .GET, "/rest/api/3/group/member?groupId=\(keptId)")
            #expect(keptMembers.status == 200 && keptMembers.object["total"] as? Int == 1, "other groups keep theirs")

            let counts = try await site.store.counts()
            #expect(counts.groups == 1 && counts.groupMemberships == 1)

            let again = try await SiteHarness.request(
                site, .POST, "/rest/api/3/group", body: #"{"name":"Portal-Agents"}"#)
            #expect(again.status == 201)
            let newId = try #require(again.object["groupId"] as? String)
            #expect(newId != groupId, "a new group, with a new id")
            let found = try await SiteHarness.request(site, .GET, "/rest/api/3/group/bulk?groupName=portal-agents")
            let foundIds = (found.object["values"] as? [[String: Any]] ?? []).compactMap { $0["groupId"] as? String }
            #expect(foundIds == [newId])
        }
    }

    @Test("removing a group that does not exist answers 404, and removes nothing", arguments: StoreKind.allCases)
    func removeUnknown(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let groupId = try await Self.createGroup(site, named: "stays")
            for query in ["groupId=missing", "groupname=nobody", "groupId=\(groupId)x"] {
                let unknown = try await SiteHarness.request(site, .DELETE, "/rest/api/3/group?" + query)
                #expect(unknown.status == 404, "\(query)")
                #expect(unknown.errorText == "Specified group does not exist.", "\(query)")
            }
            #expect(try await site.store.counts().groups == 1)

            let first = try await SiteHarness.request(site, .DELETE, "/rest/api/3/group?groupId=\(groupId)")
            #expect(first.status == 200)
            let second = try await SiteHarness.request(site, .DELETE, "/rest/api/3/group?groupId=\(groupId)")
            #expect(second.status == 404, "a removed group is gone")
            #expect(second.errorText == "Specified group does not exist.")
        }
    }

    @Test(
        "removing a group without groupId or groupname (or with both) answers 400, and removes nothing",
        arguments: StoreKind.allCases)
    func removeWithoutSelector(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let groupId = try await Self.createGroup(site, named: "stays")
            for path in [
                "/rest/api/3/group", "/rest/api/3/group?swapGroupId=\(groupId)",
                "/rest/api/3/group?groupId=\(groupId)&groupname=stays",
            ] {
                let refused = try await SiteHarness.request(site, .DELETE, path)
                #expect(refused.status == 400, "\(path)")
                #expect(refused.errorText.contains("'groupId'"), "\(path)")
            }
            let bulk = try await SiteHarness.request(site, .GET, "/rest/api/3/group/bulk?groupId=\(groupId)")
            #expect(bulk.object["total"] as? Int == 1)
            #expect(try await site.store.counts().groups == 1)
        }
    }

    @Test(
        "a removed group's memberships go with it: its member joins the re-created group as a new member",
        arguments: StoreKind.allCases)
    func membershipsAreRemoved(kind: StoreKind) async throws {
        try await SiteHarness.withSite(kind) { site in
            let groupId = try await Self.createGroup(site, named: "helpdesk")
            var accounts: [String] = []
            for index in 0..<3 {
                let accountId = try await Self.createUser(site, email: "helpdesk\(index)@example.com")
                #expect(try await Self.addMember(site, accountId, toGroupId: groupId).status == 201)
                accounts.append(accountId)
            }
            #expect(try await site.store.counts().groupMemberships == 3)

            // By name, in any case, ignoring Atlassian's swapGroup.
            let removed = try await SiteHarness.request(
                site, .DELETE, "/rest/api/3/group?groupname=HELPDESK&swapGroup=other")
            #expect(removed.status == 200)
            #expect(
                try await site.store.counts()
                    == SiteCounts(
                        atlassianAccounts: 3, customerAccounts: 0, groups: 0, groupMemberships: 0))

            let newId = try await Self.createGroup(site, named: "helpdesk")
            #expect(newId != groupId)
            let rejoined = try await Self.addMember(site, accounts[0], toGroupId: newId)
            #expect(rejoined.status == 201, "added, not 'already a member': \(rejoined.body)")
            let members = try await SiteHarness.request(site, .GET, "/rest/api/3/group/member?groupname=helpdesk")
            #expect(members.status == 200)
            #expect(members.object["total"] as? Int == 1)
            let listed = (members.object["values"] as? [[String: Any]] ?? []).compactMap { $0["accountId"] as? String }
            #expect(listed == [accounts[0]])
            #expect(try await site.store.counts().groupMemberships == 1)
        }
    }

    /// Creates a group over the wire; its id.
    private static func createGroup(_ site: RunningSite, named name: String) async throws -> String {
        let created = try await SiteHarness.request(site, .POST, "/rest/api/3/group", body: #"{"name":"\#(name)"}"#)
        #expect(created.status == 201)
        return try #require(created.object["groupId"] as? String)
    }

    /// Creates an Atlassian account over the wire; its id.
    private static func createUser(_ site: RunningSite, email: String) async throws -> String {
        let user = try await SiteHarness.request(
            site, .POST, "/rest/api/3/user", body: #"{"emailAddress":"\#(email)"}"#)
        return try #require(user.object["accountId"] as? String)
    }

    /// Adds an account to a group over the wire.
    private static func addMember(_ site: RunningSite, _ accountId: String, toGroupId groupId: String)
        async throws -> RawAnswer
    {
        try await SiteHarness.request(
            site, .POST, "/rest/api/3/group/user?groupId=\(groupId)", body: #"{"accountId":"\#(accountId)"}"#)
    }
}
