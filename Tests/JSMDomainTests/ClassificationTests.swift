import JSMDomain
import Testing

/// A small Jira source: three directories (ids deliberately not in position order), licensing
/// groups of each kind, nested groups, and one user per scenario.
enum Source {
    static let internalDirectory = DirectoryRow(id: 30, name: "Jira Internal", isActive: true, position: 0)
    static let oldLDAP = DirectoryRow(id: 10, name: "Old LDAP", isActive: false, position: 1)
    static let ldap = DirectoryRow(id: 20, name: "LDAP", isActive: true, position: 2)

    static let groups = [
        GroupRow(id: 1, name: "jira-servicedesk-users", directoryId: 30),
        GroupRow(id: 2, name: "jira-administrators", directoryId: 30),
        GroupRow(id: 3, name: "jira-system-administrators", directoryId: 30),
        GroupRow(id: 4, name: "team-a", directoryId: 30),
        GroupRow(id: 5, name: "team-a-night-shift", directoryId: 30),
        GroupRow(id: 6, name: "portal-helpers", directoryId: 30),
        GroupRow(id: 7, name: "jira-software-users", directoryId: 20),
        GroupRow(id: 8, name: "Retired-Licensed", isActive: false, directoryId: 30),
        GroupRow(id: 9, name: "loop-a", directoryId: 30),
        GroupRow(id: 11, name: "loop-b", directoryId: 30),
    ]

    static let licensing = (
        roles: [
            LicenseRoleGroupRow(licenseRoleName: "jira-servicedesk", groupName: "JIRA-ServiceDesk-Users"),
            LicenseRoleGroupRow(licenseRoleName: "jira-software", groupName: "jira-software-users"),
            LicenseRoleGroupRow(licenseRoleName: "jira-software", groupName: "retired-licensed"),
        ],
        permissions: [
            GlobalPermissionRow(permission: "ADMINISTER", groupName: "jira-administrators"),
            GlobalPermissionRow(permission: "SYSTEM_ADMIN", groupName: "jira-system-administrators"),
            GlobalPermissionRow(permission: "USER_PICKER", groupName: "portal-helpers"),
        ]
    )

    /// Membership ids start at 100; nested groups: team-a-night-shift in team-a in servicedesk-users,
    /// and loop-a / loop-b nested in each other (a cycle).
    static func snapshot(
        users: [UserRow], memberships: [(group: Int64, user: Int64)] = [],
        appUsers: [AppUserRow]? = nil
    ) -> SourceSnapshot {
        var rows = [
            MembershipRow(id: 100, parentId: 1, childId: 4, type: .groupGroup, directoryId: 30),
            MembershipRow(id: 101, parentId: 4, childId: 5, type: .groupGroup, directoryId: 30),
            MembershipRow(id: 102, parentId: 9, childId: 11, type: .groupGroup, directoryId: 30),
            MembershipRow(id: 103, parentId: 11, childId: 9, type: .groupGroup, directoryId: 30),
        ]
        for (offset, membership) in memberships.enumerated() {
            let directory = groups.first { $0.id == membership.group }?.directoryId ?? 30
            rows.append(
                MembershipRow(
                    id: 200 + Int64(offset), parentId: membership.group, childId: membership.user, type: .groupUser,
                    directoryId: directory))
        }
        return SourceSnapshot(
            directories: [internalDirectory, oldLDAP, ldap], users: users,
            appUsers: appUsers
                ?? users.map {
                    AppUserRow(id: $0.id, userKey: "key-\($0.lowerUserName)", lowerUserName: $0.lowerUserName)
                },
            groups: groups, memberships: rows, licenseRoleGroups: licensing.roles,
            globalPermissions: licensing.permissions)
    }

    static func user(_ id: Int64, _ name: String, directory: Int64 = 30, active: Bool = true, email: String? = "")
        -> UserRow
    {
        UserRow(
            id: id, directoryId: directory, userName: name, isActive: active, displayName: name.uppercased(),
            emailAddress: email == "" ? "\(name)@example.com" : email)
    }

    /// Classifies one user among the fixture's groups.
    static func classify(_ users: [UserRow], memberships: [(group: Int64, user: Int64)] = [])
        -> (identity: ServerIdentity?, result: ClassificationResult)
    {
        let result = IdentityClassifier.classifyAll(snapshot(users: users, memberships: memberships))
        return (result.identities["key-\(users[0].lowerUserName)"], result)
    }
}

@Suite("Classifying server identities from Jira's tables")
struct ClassificationTests {
    @Test("A user in no licensing group is a customer")
    func customer() {
        let (identity, result) = Source.classify([Source.user(1, "carol")], memberships: [(6, 1)])
        #expect(identity?.kind == .customer)
        #expect(identity?.email?.value == "carol@example.com")
        #expect(identity?.directoryPosition == 0)
        #expect(result.anomalies.filter { $0.userKey != nil }.isEmpty)
    }

    @Test(
        "Licensed directly through an application-role group, or through ADMINISTER / SYSTEM_ADMIN",
        arguments: [Int64(1), 2, 3])
    func licensedDirectly(group: Int64) {
        let (identity, _) = Source.classify([Source.user(1, "alex")], memberships: [(group, 1)])
        #expect(identity?.kind == .licensedUser)
    }

    @Test("Licensed through a nested group, two levels below the application-role group")
    func licensedThroughNestedGroup() {
        let (identity, _) = Source.classify([Source.user(1, "nina")], memberships: [(5, 1)])
        #expect(identity?.kind == .licensedUser)
    }

    @Test("An inactive group grants no licence, even if it has an application role")
    func inactiveGroupGrantsNothing() {
        let (identity, _) = Source.classify([Source.user(1, "ivy")], memberships: [(8, 1)])
        #expect(identity?.kind == .customer)
    }

    @Test("An inactive group nested in a licensed group passes no licence down, nor do groups below it")
    func inactiveNestedGroupBreaksTheChain() {
        var snapshot = Source.snapshot(
            users: [Source.user(1, "old-member"), Source.user(2, "below-old"), Source.user(3, "under-retired")],
            memberships: [(14, 1), (15, 2), (16, 3)])
        snapshot.groups += [
            GroupRow(id: 14, name: "old-team", isActive: false, directoryId: 30),
            GroupRow(id: 15, name: "old-team-sub", directoryId: 30),
            GroupRow(id: 16, name: "under-retired", directoryId: 30),
        ]
        snapshot.memberships += [
            MembershipRow(id: 310, parentId: 1, childId: 14, type: .groupGroup, directoryId: 30),
            MembershipRow(id: 311, parentId: 14, childId: 15, type: .groupGroup, directoryId: 30),
            MembershipRow(id: 312, parentId: 8, childId: 16, type: .groupGroup, directoryId: 30),
        ]
        let result = IdentityClassifier.classifyAll(snapshot)
        #expect(result.identities["key-old-member"]?.kind == .customer)
        #expect(result.identities["key-below-old"]?.kind == .customer)
        #expect(result.identities["key-under-retired"]?.kind == .customer)
    }

    @Test("A username in two active directories resolves to the first by position, not by id")
    func firstActiveDirectoryWins() {
        let inLDAP = Source.user(1, "sam", directory: 20, email: "sam@ldap.example.com")
        let inInternal = Source.user(2, "sam", directory: 30, email: "sam@internal.example.com")
        // Licensed in LDAP only: the resolved (Internal) directory decides, so sam is a customer.
        let (identity, _) = Source.classify([inLDAP, inInternal], memberships: [(7, 1)])
        #expect(identity?.directoryId == 30)
        #expect(identity?.email?.value == "sam@internal.example.com")
        #expect(identity?.kind == .customer)
    }

    @Test("An inactive directory earlier by position is skipped for the first active one")
    func inactiveDirectorySkipped() {
        let old = Source.user(1, "max", directory: 10, email: "max@old.example.com")
        let current = Source.user(2, "max", directory: 20, email: "max@new.example.com")
        let (identity, _) = Source.classify([old, current], memberships: [(7, 2)])
        #expect(identity?.directoryId == 20)
        #expect(identity?.kind == .licensedUser)
    }

    @Test("A user only in an inactive directory is inactiveDirectory, licence or not")
    func onlyInactiveDirectory() {
        let (identity, _) = Source.classify([Source.user(1, "ghost", directory: 10)])
        #expect(identity?.kind == .inactiveDirectory)
        #expect(identity?.email?.value == "ghost@example.com")
    }

    @Test("A disabled user keeps its kind and is flagged disabled when decided")
    func disabledKeepsKind() {
        let (identity, _) = Source.classify([Source.user(1, "dora", active: false)], memberships: [(1, 1)])
        #expect(identity?.kind == .licensedUser)
        #expect(identity?.isActive == false)
        let decision = identity.map {
            MigrationRules.decide($0, existingAccounts: [], priorMapping: nil, policies: MigrationPolicies())
        }
        #expect(decision?.flags == .disabled)
        #expect(decision?.outcome == .created)
    }

    @Test("A referenced user key with no app_user or cwd_user row is deleted")
    func deletedReporter() {
        let result = IdentityClassifier.classifyAll(
            Source.snapshot(users: []), referencedUserKeys: ["JIRAUSER10400"])
        #expect(result.identities["JIRAUSER10400"]?.kind == .deleted)
        #expect(result.identities["JIRAUSER10400"]?.email == nil)
    }

    @Test("An app_user whose cwd_user rows are gone is deleted, keeping its user name")
    func appUserWithoutDirectoryRow() {
        let result = IdentityClassifier.classifyAll(
            Source.snapshot(users: [], appUsers: [AppUserRow(id: 5, userKey: "JIRAUSER5", lowerUserName: "left")]))
        #expect(result.identities["JIRAUSER5"]?.kind == .deleted)
        #expect(result.identities["JIRAUSER5"]?.userName == "left")
    }

    @Test("A NULL email is classified as usual and reported with the user key")
    func nullEmail() {
        let (identity, result) = Source.classify([Source.user(1, "nomail", email: nil)])
        #expect(identity?.kind == .customer)
        #expect(identity?.emailValidity == .missing)
        #expect(result.anomalies.contains { $0.kind == .missingEmail && $0.userKey == "key-nomail" })
    }

    @Test("A user in an unknown directory is reported and treated as not in an active directory")
    func unknownDirectory() {
        let (identity, result) = Source.classify([Source.user(1, "lost", directory: 99)])
        #expect(identity?.kind == .inactiveDirectory)
        #expect(identity?.directoryPosition == nil)
        #expect(result.anomalies.contains { $0.kind == .unknownDirectory && $0.userKey == "key-lost" })
    }

    @Test("A row in an unknown directory does not hide the same name in an active one")
    func unknownDirectoryBesideActive() {
        let (identity, result) = Source.classify(
            [Source.user(1, "twin", directory: 99), Source.user(2, "twin", directory: 20)])
        #expect(identity?.kind == .customer)
        #expect(identity?.directoryId == 20)
        #expect(result.anomalies.contains { $0.kind == .unknownDirectory })
    }

    @Test("A membership naming a missing group is reported with the user key and ignored")
    func danglingMembership() {
        let (identity, result) = Source.classify([Source.user(1, "dan")], memberships: [(999, 1), (1, 1)])
        #expect(identity?.kind == .licensedUser, "the valid membership still counts")
        #expect(result.anomalies.contains { $0.kind == .danglingMembership && $0.userKey == "key-dan" })
    }

    @Test("Memberships naming a missing user or nesting a missing group are reported, not fatal")
    func danglingRowsWithoutUser() {
        var snapshot = Source.snapshot(users: [Source.user(1, "eve")])
        snapshot.memberships.append(MembershipRow(id: 900, parentId: 1, childId: 77, type: .groupUser, directoryId: 30))
        snapshot.memberships.append(
            MembershipRow(id: 901, parentId: 1, childId: 78, type: .groupGroup, directoryId: 30))
        let result = IdentityClassifier.classifyAll(snapshot)
        let dangling = result.anomalies.filter { $0.kind == .danglingMembership }
        #expect(dangling.count == 2)
        #expect(dangling.allSatisfy { $0.userKey == nil })
        #expect(dangling.contains { $0.detail.contains("900") } && dangling.contains { $0.detail.contains("901") })
    }

    @Test("A membership cycle terminates, is reported with the user key, and licensing still flows")
    func membershipCycle() {
        var snapshot = Source.snapshot(users: [Source.user(1, "cy")], memberships: [(9, 1)])
        // Nest the whole cycle in the service desk users group: loop-b is licensed, so is loop-a.
        snapshot.memberships.append(
            MembershipRow(id: 300, parentId: 1, childId: 11, type: .groupGroup, directoryId: 30))
        let result = IdentityClassifier.classifyAll(snapshot)
        #expect(result.identities["key-cy"]?.kind == .licensedUser)
        #expect(result.anomalies.contains { $0.kind == .membershipCycle && $0.userKey == "key-cy" })
    }

    @Test("A group below a cycle is reported too; a group beside it is not")
    func belowCycle() {
        var snapshot = Source.snapshot(
            users: [Source.user(1, "below"), Source.user(2, "beside")], memberships: [(12, 1), (6, 2)])
        snapshot.groups.append(GroupRow(id: 12, name: "under-loop", directoryId: 30))
        snapshot.memberships.append(
            MembershipRow(id: 301, parentId: 9, childId: 12, type: .groupGroup, directoryId: 30))
        let result = IdentityClassifier.classifyAll(snapshot)
        #expect(result.anomalies.contains { $0.kind == .membershipCycle && $0.userKey == "key-below" })
        #expect(!result.anomalies.contains { $0.kind == .membershipCycle && $0.userKey == "key-beside" })
        #expect(result.identities["key-below"]?.kind == .customer)
    }

    @Test("A cwd_user without app_user is kept under its lower-cased name and reported")
    func missingAppUser() {
        let snapshot = Source.snapshot(users: [Source.user(1, "Legacy")], appUsers: [])
        let result = IdentityClassifier.classifyAll(snapshot)
        #expect(result.identities["legacy"]?.kind == .customer)
        #expect(result.anomalies.contains { $0.kind == .missingAppUser && $0.userKey == "legacy" })
    }

    @Test("Per-user classification gives the same answer as the whole-snapshot one")
    func perUserMatchesSnapshot() {
        let snapshot = Source.snapshot(users: [Source.user(1, "pu")], memberships: [(5, 1)])
        let classifier = IdentityClassifier(snapshot: snapshot)
        let classified = classifier.classify(
            UserSourceRows(
                userKey: "key-pu", appUser: snapshot.appUsers.first, users: snapshot.users,
                memberships: snapshot.memberships.filter { $0.type == .groupUser }))
        #expect(classified.identity == IdentityClassifier.classifyAll(snapshot).identities["key-pu"])
        #expect(classified.identity.kind == .licensedUser)
        #expect(classified.anomalies.isEmpty)
    }
}
