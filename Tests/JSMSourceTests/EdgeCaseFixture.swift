import JSMDomain
import JSMSource
import JSMSourceFixtures

/// A small hand-built Jira database holding every case of the classification rules and every kind
/// of malformed row, with the answers the adapter must give on both backends.
enum EdgeCaseFixture {
    static let tooLongLocalPart = String(repeating: "x", count: 70)

    /// `(id, directory, user name, email, active)`; the key is `JIRAUSER<id>` unless listed below.
    static let users: [(id: Int64, directory: Int64, name: String, email: String?, active: Int64)] = [
        (101, 1, "Agent.Direct", "Agent.Direct@Example.com", 1),  // application role, direct
        (102, 1, "agent.nested", "agent.nested@example.com", 1),  // two levels of nested groups
        (103, 1, "admin.user", "admin.user@example.com", 1),  // ADMINISTER, legacy key
        (104, 1, "sys.admin", "sys.admin@example.com", 1),  // SYSTEM_ADMIN
        (105, 1, "sd.agent", "sd.agent@example.com", 1),  // application role named in another case
        (106, 1, "cust.one", " Cust.One@Example.COM ", 1),  // case and spaces; in a USE-only group
        (107, 1, "cust.two", "cust.one@example.com", 1),  // same normalised email as 106
        (108, 1, "cust.null", nil, 1),  // NULL email
        (109, 1, "cust.bad", "not-an-email", 1),  // malformed
        (110, 1, "cust.long", tooLongLocalPart + "@example.com", 1),  // local part over 64
        (111, 1, "disabled.agent", "disabled.agent@example.com", 0),  // disabled licensed user
        (112, 3, "old.timer", "old.timer@example.com", 1),  // only in the inactive directory
        (113, 2, "two.dirs", "two.dirs@ldap.example.com", 1),  // licensed in LDAP (position 1)...
        (114, 1, "Two.Dirs", "two.dirs@example.com", 1),  // ...but resolves to Internal (position 0)
        (115, 3, "back.again", "back.again@old.example.com", 1),  // inactive directory...
        (116, 2, "back.again", "back.again@example.com", 1),  // ...and active LDAP: customer in LDAP
        (117, 1, "cust.participant", "cust.participant@example.com", 1),  // related only as participant
        (118, 1, "cust.orgmember", "cust.orgmember@example.com", 1),  // related only as organization member
        (119, 1, "cust.cycle", "cust.cycle@example.com", 1),  // in a group on a cycle
        (120, 1, "cust.dangling", "cust.dangling@example.com", 1),  // membership of a missing group
        (121, 1, "no.appuser", "no.appuser@example.com", 1),  // no app_user row
        (122, 77, "lost.dir", "lost.dir@example.com", 1),  // directory 77 does not exist
        (123, 1, "multi.project", "multi.project@example.com", 1),  // reporter in two projects
        (124, 1, "quiet.customer", "quiet.customer@example.com", 1),  // referenced by nothing
    ]

    static func key(ofUser id: Int64) -> String? {
        switch id {
        case 103: return "admin.user"
        case 114: return nil  // shares the name of 113
        case 116: return nil  // shares the name of 115
        case 121: return nil  // no app_user
        default: return "JIRAUSER\(id)"
        }
    }

    /// Writes the fixture.
    static func write(to writer: some JiraFixtureWriter) async throws {
        try await writer.write { writer in try await writeRows(to: writer) }
    }

    static func writeRows(to writer: some JiraFixtureWriter) async throws {
        try await writer.createTables()
        try await writer.insert(
            JiraTables.directory,
            rows: [
                [.integer(1), .text("Jira Internal Directory"), .integer(1), .integer(0)],
                [.integer(2), .text("Corporate LDAP"), .integer(1), .integer(1)],
                [.integer(3), .text("Old Crowd"), .integer(0), .integer(2)],
            ])
        let groups: [(Int64, String, Int64)] = [
            (11, "jira-software-users", 1), (12, "jira-servicedesk-users", 1), (13, "service-desk-agents", 1),
            (14, "Support-Tier2", 1), (15, "jira-administrators", 1), (16, "jira-system-administrators", 1),
            (17, "all-staff", 1), (18, "cycle-a", 1), (19, "cycle-b", 1), (21, "jira-software-users", 2),
        ]
        try await writer.insert(
            JiraTables.group,
            rows: groups.map { [.integer($0.0), .text($0.1), .text($0.1.lowercased()), .integer(1), .integer($0.2)] })
        var memberships: [[SQLValue]] = []
        func member(_ id: Int64, parent: Int64, child: Int64, type: String, childName: String, directory: Int64 = 1) {
            let parentName = groups.first { $0.0 == parent }?.1 ?? "missing-group"
            memberships.append([
                .integer(id), .integer(parent), .integer(child), .text(type), .text(parentName),
                .text(parentName.lowercased()), .text(childName), .text(childName.lowercased()), .integer(directory),
            ])
        }
        member(1, parent: 12, child: 13, type: "GROUP_GROUP", childName: "service-desk-agents")
        member(2, parent: 13, child: 14, type: "GROUP_GROUP", childName: "Support-Tier2")
        member(3, parent: 18, child: 19, type: "GROUP_GROUP", childName: "cycle-b")
        member(4, parent: 19, child: 18, type: "GROUP_GROUP", childName: "cycle-a")
        member(5, parent: 17, child: 999, type: "GROUP_GROUP", childName: "no-such-group")
        member(10, parent: 11, child: 101, type: "GROUP_USER", childName: "Agent.Direct")
        member(11, parent: 14, child: 102, type: "GROUP_USER", childName: "agent.nested")
        member(12, parent: 15, child: 103, type: "GROUP_USER", childName: "admin.user")
        member(13, parent: 16, child: 104, type: "GROUP_USER", childName: "sys.admin")
        member(14, parent: 12, child: 105, type: "GROUP_USER", childName: "sd.agent")
        member(15, parent: 17, child: 106, type: "GROUP_USER", childName: "cust.one")
        member(16, parent: 11, child: 111, type: "GROUP_USER", childName: "disabled.agent")
        member(17, parent: 21, child: 113, type: "GROUP_USER", childName: "two.dirs", directory: 2)
        member(18, parent: 19, child: 119, type: "GROUP_USER", childName: "cust.cycle")
        member(19, parent: 555, child: 120, type: "GROUP_USER", childName: "cust.dangling")
        member(20, parent: 17, child: 999, type: "GROUP_USER", childName: "vanished")
        member(21, parent: 11, child: 112, type: "GROUP_USER", childName: "old.timer", directory: 3)
        try await writer.insert(JiraTables.membership, rows: memberships)
        try await writer.insert(
            JiraTables.licenseRoleGroup,
            rows: [
                [.integer(1), .text("jira-software"), .text("jira-software-users")],
                [.integer(2), .text("jira-servicedesk"), .text("JIRA-SERVICEDESK-USERS")],
            ])
        try await writer.insert(
            JiraTables.globalPermission,
            rows: [
                [.integer(1), .text("ADMINISTER"), .text("jira-administrators")],
                [.integer(2), .text("SYSTEM_ADMIN"), .text("jira-system-administrators")],
                [.integer(3), .text("USE"), .text("all-staff")],
            ])
        try await writer.insert(
            JiraTables.user,
            rows: users.map { user in
                [
                    .integer(user.id), .integer(user.directory), .text(user.name), .text(user.name.lowercased()),
                    .integer(user.active), .text(user.name.capitalized), user.email.map(SQLValue.text) ?? .null,
                    user.email.map { .text($0.lowercased()) } ?? .null,
                ]
            })
        var appUsers: [[SQLValue]] = users.compactMap { user in
            key(ofUser: user.id).map { [.integer(user.id), .text($0), .text(user.name.lowercased())] }
        }
        appUsers.append([.integer(900), .text("JIRAUSER900"), .text("departed")])  // deleted user
        try await writer.insert(JiraTables.appUser, rows: appUsers)
        try await writer.insert(
            JiraTables.project,
            rows: [
                [.integer(1), .text("Service One"), .text("SD1"), .text("service_desk")],
                [.integer(2), .text("Service Two"), .text("SD2"), .text("service_desk")],
                [.integer(3), .text("Software"), .text("SW"), .text("software")],
            ])
        try await writer.insert(
            JiraTables.serviceDesk, rows: [[.integer(1), .integer(1)], [.integer(2), .integer(2)]])
        func issue(_ id: Int64, _ project: Int64, _ reporter: String?, _ creator: String?, _ assignee: String?)
            -> [SQLValue]
        {
            [
                .integer(id), .integer(project), reporter.map(SQLValue.text) ?? .null,
                creator.map(SQLValue.text) ?? .null, assignee.map(SQLValue.text) ?? .null,
            ]
        }
        try await writer.insert(
            JiraTables.issue,
            rows: [
                issue(1001, 1, "JIRAUSER106", "JIRAUSER106", "JIRAUSER105"),
                issue(1002, 1, "JIRAUSER900", "JIRAUSER101", nil),
                issue(1003, 1, "JIRAUSER123", "JIRAUSER123", "admin.user"),
                issue(1004, 2, "JIRAUSER123", "JIRAUSER123", "JIRAUSER102"),
                issue(1005, 2, "ghost", "ghost", nil),
                issue(1006, 2, "JIRAUSER112", "JIRAUSER112", nil),
                issue(1007, 3, "JIRAUSER101", "JIRAUSER101", "JIRAUSER111"),
                issue(1008, 1, "no.appuser", "no.appuser", nil),
            ])
        try await writer.insert(
            JiraTables.customField,
            rows: [
                [.integer(10), .text(JiraSchema.requestParticipantsFieldType), .text("Request participants")],
                [.integer(20), .text(JiraSchema.customerOrganizationsFieldType), .text("Organizations")],
                [.integer(30), .text("com.atlassian.jira.plugin.system.customfieldtypes:textfield"), .text("Notes")],
            ])
        try await writer.insert(
            JiraTables.customFieldValue,
            rows: [
                [.integer(1), .integer(1001), .integer(10), .text("JIRAUSER117")],
                [.integer(2), .integer(1001), .integer(20), .text("1")],
                [.integer(3), .integer(1003), .integer(30), .text("JIRAUSER124")],
                [.integer(4), .integer(1004), .integer(10), .text("JIRAUSER107")],
            ])
        try await writer.insert(
            JiraTables.organization, rows: [[.integer(1), .text("Acme")], [.integer(2), .text("Globex")]])
        try await writer.insert(
            JiraTables.organizationMember,
            rows: [
                [.integer(1), .integer(1), .text("JIRAUSER118")],
                [.integer(2), .integer(1), .text("JIRAUSER106")],
                [.integer(3), .integer(2), .text("JIRAUSER124")],
            ])
        try await writer.finish()
    }

    /// `kind`, `isActive`, resolved directory, email validity and anomaly kinds, by user key.
    struct Expected: Equatable, CustomStringConvertible {
        let kind: IdentityKind
        var isActive = true
        var directory: Int64? = 1
        var email: EmailValidity = .valid
        var anomalies: [SourceAnomaly.Kind] = []

        var description: String {
            "\(kind.rawValue) active=\(isActive) dir=\(directory.map(String.init) ?? "-") email=\(email.rawValue) "
                + "anomalies=\(anomalies.map(\.rawValue))"
        }
    }

    static let expected: [String: Expected] = [
        "JIRAUSER101": Expected(kind: .licensedUser),
        "JIRAUSER102": Expected(kind: .licensedUser),
        "admin.user": Expected(kind: .licensedUser),
        "JIRAUSER104": Expected(kind: .licensedUser),
        "JIRAUSER105": Expected(kind: .licensedUser),
        "JIRAUSER106": Expected(kind: .customer),
        "JIRAUSER107": Expected(kind: .customer),
        "JIRAUSER108": Expected(kind: .customer, email: .missing, anomalies: [.missingEmail]),
        "JIRAUSER109": Expected(kind: .customer, email: .malformed),
        "JIRAUSER110": Expected(kind: .customer, email: .localPartTooLong),
        "JIRAUSER111": Expected(kind: .licensedUser, isActive: false),
        "JIRAUSER112": Expected(kind: .inactiveDirectory, directory: 3),
        "JIRAUSER113": Expected(kind: .customer),
        "JIRAUSER115": Expected(kind: .customer, directory: 2),
        "JIRAUSER117": Expected(kind: .customer),
        "JIRAUSER118": Expected(kind: .customer),
        "JIRAUSER119": Expected(kind: .customer, anomalies: [.membershipCycle]),
        "JIRAUSER120": Expected(kind: .customer, anomalies: [.danglingMembership]),
        "no.appuser": Expected(kind: .customer, anomalies: [.missingAppUser]),
        "JIRAUSER122": Expected(kind: .inactiveDirectory, directory: 77, anomalies: [.unknownDirectory]),
        "JIRAUSER123": Expected(kind: .customer),
        "JIRAUSER124": Expected(kind: .customer),
        "JIRAUSER900": Expected(kind: .deleted, directory: nil, email: .missing),
        "ghost": Expected(kind: .deleted, directory: nil, email: .missing),
    ]

    static func observed(_ classified: ClassifiedIdentity) -> Expected {
        Expected(
            kind: classified.identity.kind, isActive: classified.identity.isActive,
            directory: classified.identity.directoryId, email: classified.identity.emailValidity,
            anomalies: classified.anomalies.map(\.kind))
    }

    /// `user key role` lines each project references.
    static let related: [String: [String]] = [
        "SD1": [
            "JIRAUSER101 creator", "JIRAUSER105 assignee", "JIRAUSER106 creator", "JIRAUSER106 organization_member",
            "JIRAUSER106 reporter", "JIRAUSER117 request_participant", "JIRAUSER118 organization_member",
            "JIRAUSER123 creator", "JIRAUSER123 reporter", "JIRAUSER900 reporter", "admin.user assignee",
            "no.appuser creator", "no.appuser reporter",
        ],
        "SD2": [
            "JIRAUSER102 assignee", "JIRAUSER107 request_participant", "JIRAUSER112 creator", "JIRAUSER112 reporter",
            "JIRAUSER123 creator", "JIRAUSER123 reporter", "ghost creator", "ghost reporter",
        ],
        "SW": ["JIRAUSER101 creator", "JIRAUSER101 reporter", "JIRAUSER111 assignee"],
    ]
}
