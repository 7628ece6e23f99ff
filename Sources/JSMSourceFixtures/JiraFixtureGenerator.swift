import JSMDomain
import JSMSource

/// The documented shares of every case the generator writes; the README's proportions table
/// quotes these numbers.
public enum JiraFixtureProportions {
    /// Users (cwd_user names) that exist only in the inactive "Legacy Crowd" directory.
    public static let inactiveDirectoryOnly = 0.02
    /// Users whose only row names directory 99, which `cwd_directory` lacks (a malformed row).
    public static let unknownDirectory = 0.0005
    /// Active-directory users that are licensed (the rest are customers).
    public static let licensed = 0.15
    /// How licensed users get their licence, in order: jira-software-users, jira-servicedesk-users,
    /// nested support-tier2 -> service-desk-agents -> jira-servicedesk-users, ADMINISTER, SYSTEM_ADMIN.
    public static let licencePaths: [(path: String, share: Double)] = [
        ("application role jira-software", 0.35), ("application role jira-servicedesk", 0.25),
        ("nested group, two levels", 0.20), ("ADMINISTER", 0.12), ("SYSTEM_ADMIN", 0.08),
    ]
    /// Active users with a second row, in the "Partner" directory that comes later: the user name
    /// is in two directories and resolves to the first.
    public static let secondActiveDirectory = 0.02
    /// Active users with a second row in the inactive directory.
    public static let alsoInInactiveDirectory = 0.01
    /// Users that are disabled (`active = 0`).
    public static let disabled = 0.03
    /// Users with no `app_user` row (their lower-cased name serves as key; a malformed row).
    public static let missingAppUser = 0.003
    /// Users whose key is their lower-cased name (created before Jira 6), the rest are JIRAUSERnnnnn.
    public static let legacyUserKey = 0.25
    /// Customers that are members of a non-licensing group (all-staff).
    public static let customerInPlainGroup = 0.20
    /// Customers in a group that sits in a cycle of nested groups (a malformed row).
    public static let customerInGroupCycle = 0.002
    /// Emails: NULL, blank, malformed, local part over 64 characters, a case/space variant of the
    /// previous user's address, exactly the previous user's address; the rest are unique and valid.
    public static let emailNull = 0.01
    /// See ``emailNull``.
    public static let emailBlank = 0.005
    /// See ``emailNull``.
    public static let emailMalformed = 0.01
    /// See ``emailNull``.
    public static let emailTooLong = 0.002
    /// See ``emailNull``.
    public static let emailCaseVariantOfPrevious = 0.02
    /// See ``emailNull``.
    public static let emailSameAsPrevious = 0.01
    /// Customers who have raised requests; the others can only be related as participants or
    /// organization members.
    public static let requesterCustomers = 0.70
    /// `app_user` rows with no directory user (deleted users), per user.
    public static let deletedAppUsers = 0.01
    /// User keys referenced by requests with no row at all, per user.
    public static let deletedUnknownKeys = 0.005
    /// User memberships naming a `cwd_user` id that does not exist, per user (a malformed row).
    public static let danglingMemberships = 0.0005
    /// Requests per user, spread over the service projects.
    public static let requestsPerUser = 0.5
    /// Issues of software projects per user.
    public static let softwareIssuesPerUser = 0.1
    /// Request reporters: requester customer, licensed user, deleted, inactive-directory user.
    public static let reporterLicensed = 0.06
    /// See ``reporterLicensed``.
    public static let reporterDeleted = 0.05
    /// See ``reporterLicensed``.
    public static let reporterInactiveDirectory = 0.02
    /// Requests with one to three participants (drawn mostly from customers who raised nothing).
    public static let requestsWithParticipants = 0.20
    /// Requests shared with an organization.
    public static let requestsSharedWithOrganization = 0.10
    /// Organization memberships per user (members drawn mostly from customers who raised nothing).
    public static let organizationMembersPerUser = 0.04
    /// Site accounts: customers with an existing customer account, customers whose email is an
    /// Atlassian account, licensed users with an Atlassian account, licensed users whose email is
    /// only a customer account (they end with a second account).
    public static let siteCustomerHasCustomerAccount = 0.05
    /// See ``siteCustomerHasCustomerAccount``.
    public static let siteCustomerHasAtlassianAccount = 0.01
    /// See ``siteCustomerHasCustomerAccount``.
    public static let siteLicensedHasAtlassianAccount = 0.30
    /// See ``siteCustomerHasCustomerAccount``.
    public static let siteLicensedHasCustomerAccount = 0.02
}

/// An account to create on the cloud site before a migration, so the link and second-account
/// rules have something to find.
public struct SiteAccount: Sendable, Hashable {
    /// The normalised email.
    public let email: String
    /// The display name.
    public let displayName: String
    /// `atlassian` or `customer`.
    public let accountType: String

    /// One JSON Lines record: `{"email":...,"displayName":...,"accountType":...}`.
    public var jsonLine: String {
        "{\"email\":\(Self.json(email)),\"displayName\":\(Self.json(displayName)),"
            + "\"accountType\":\(Self.json(accountType))}"
    }

    static func json(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 {
                    result += "\\u00" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }
}

/// What a generation wrote, by the category it meant each row to be.
public struct JiraFixtureSummary: Sendable, Hashable {
    /// Distinct user names written to `cwd_user`.
    public var users = 0
    /// `cwd_user` rows (a name in two directories has two).
    public var directoryUserRows = 0
    /// Users meant as licensed (active directory, licensing group).
    public var licensed = 0
    /// Users meant as customers (active directory, no licensing group).
    public var customers = 0
    /// Users only in the inactive directory.
    public var inactiveDirectoryOnly = 0
    /// Users only in the unknown directory 99.
    public var unknownDirectory = 0
    /// Disabled users.
    public var disabled = 0
    /// Users with a NULL or blank email.
    public var missingEmail = 0
    /// Users with a malformed or over-long email.
    public var invalidEmail = 0
    /// `app_user` rows without a directory user.
    public var deletedAppUsers = 0
    /// Referenced keys with no row at all.
    public var deletedUnknownKeys = 0
    /// Memberships naming a missing user.
    public var danglingMemberships = 0
    /// Service and software projects.
    public var serviceProjects = 0
    /// See ``serviceProjects``.
    public var softwareProjects = 0
    /// Requests and software issues.
    public var requests = 0
    /// See ``requests``.
    public var softwareIssues = 0
    /// Participant values written.
    public var participants = 0
    /// Organization memberships written.
    public var organizationMembers = 0
    /// Site accounts produced.
    public var siteAccounts = 0
}

/// Writes a realistic Jira Server/DC database: same seed, same rows.
///
/// Users come in index order; everything about user `i` (name, key, directory, groups, email) is
/// drawn from a stream seeded by `(seed, i)`, so issues can name any user by index without the
/// generator keeping a million strings. See ``JiraFixtureProportions`` for the shares.
public struct JiraFixtureGenerator: Sendable {
    /// How many distinct user names to write.
    public var users: Int
    /// The seed.
    public var seed: UInt64
    /// Rows buffered per table before a write.
    public var batchSize = 5_000

    /// A generator of `users` users from `seed`.
    public init(users: Int = 100_000, seed: UInt64 = 1) {
        self.users = max(10, users)
        self.seed = seed
    }

    // Directory ids.
    static let internalDirectory: Int64 = 1
    static let ldapDirectory: Int64 = 2
    static let legacyDirectory: Int64 = 3
    static let partnerDirectory: Int64 = 4
    static let missingDirectory: Int64 = 99

    /// The groups of each of the internal and LDAP directories, by role; ids are `directory * 100 + role`.
    enum GroupRole: Int64, CaseIterable {
        case softwareUsers = 1, serviceDeskUsers, serviceDeskAgents, supportTier2, administrators,
            systemAdministrators, allStaff, cycleA, cycleB

        var name: String {
            switch self {
            case .softwareUsers: return "jira-software-users"
            case .serviceDeskUsers: return "jira-servicedesk-users"
            case .serviceDeskAgents: return "service-desk-agents"
            case .supportTier2: return "Support-Tier2"
            case .administrators: return "jira-administrators"
            case .systemAdministrators: return "jira-system-administrators"
            case .allStaff: return "all-staff"
            case .cycleA: return "cycle-a"
            case .cycleB: return "cycle-b"
            }
        }
    }

    static func groupId(_ directory: Int64, _ role: GroupRole) -> Int64 { directory * 100 + role.rawValue }

    static let firstNames = [
        "ann", "bob", "chen", "dara", "emil", "fatima", "goran", "hana", "ivan", "jun", "kofi", "lena", "mateo", "nia",
        "omar", "priya", "quinn", "rosa", "sven", "tariq", "uma", "vera", "wei", "ximena", "yusuf", "zoe",
    ]
    static let lastNames = [
        "smith", "garcia", "kowalski", "nguyen", "okafor", "muller", "rossi", "tanaka", "silva", "haddad", "ivanova",
        "johansson", "kim", "lopez", "murphy", "novak", "patel", "schmidt",
    ]
    static let domains = ["example.com", "corp.example.com", "customer.example.org", "mail.example.net"]

    /// Everything about user `i`, drawn from its own stream.
    struct UserPlan {
        enum Placement { case active, inactiveOnly, unknownDirectory }
        var index: Int
        var lowerName: String
        var userName: String
        var displayName: String
        var userKey: String
        var hasAppUser: Bool
        var placement: Placement
        var directory: Int64
        var secondActive: Bool
        var alsoInactive: Bool
        var isActive: Bool
        var licenceGroup: GroupRole?
        var plainGroup: GroupRole?
        var isRequester: Bool
        /// The email's kind: 0 unique, 1 NULL, 2 blank, 3 malformed, 4 too long, 5 case variant of
        /// the previous user's, 6 same as the previous user's.
        var emailKind: Int
        var siteDraw: Double
    }

    func plan(_ index: Int) -> UserPlan {
        var random = SplitMix64.stream(seed: seed, stream: 1, index: index)
        let first = random.pick(Self.firstNames)
        let last = random.pick(Self.lastNames)
        let lowerName = "\(first).\(last)\(index)"
        let userName = random.chance(0.3) ? "\(first.capitalized1).\(last.capitalized1)\(index)" : lowerName
        let legacy = random.chance(JiraFixtureProportions.legacyUserKey)
        let hasAppUser = !random.chance(JiraFixtureProportions.missingAppUser)
        let userKey = legacy || !hasAppUser ? lowerName : "JIRAUSER\(10_000 + index)"
        var placement = UserPlan.Placement.active
        let placementDraw = random.unit()
        if placementDraw < JiraFixtureProportions.unknownDirectory {
            placement = .unknownDirectory
        } else if placementDraw < JiraFixtureProportions.unknownDirectory + JiraFixtureProportions.inactiveDirectoryOnly
        {
            placement = .inactiveOnly
        }
        let directory: Int64
        switch placement {
        case .active: directory = random.chance(0.18) ? Self.ldapDirectory : Self.internalDirectory
        case .inactiveOnly: directory = Self.legacyDirectory
        case .unknownDirectory: directory = Self.missingDirectory
        }
        let secondActive = placement == .active && random.chance(JiraFixtureProportions.secondActiveDirectory)
        let alsoInactive = placement == .active && random.chance(JiraFixtureProportions.alsoInInactiveDirectory)
        let isActive = !random.chance(JiraFixtureProportions.disabled)
        var licenceGroup: GroupRole?
        if random.chance(JiraFixtureProportions.licensed) {
            var draw = random.unit()
            let roles: [GroupRole] = [
                .softwareUsers, .serviceDeskUsers, .supportTier2, .administrators, .systemAdministrators,
            ]
            licenceGroup = roles.last
            for (offset, path) in JiraFixtureProportions.licencePaths.enumerated() {
                if draw < path.share {
                    licenceGroup = roles[offset]
                    break
                }
                draw -= path.share
            }
        }
        var plainGroup: GroupRole?
        if random.chance(JiraFixtureProportions.customerInPlainGroup) { plainGroup = .allStaff }
        if random.chance(JiraFixtureProportions.customerInGroupCycle) { plainGroup = .cycleB }
        let isRequester = random.chance(JiraFixtureProportions.requesterCustomers)
        let emailDraw = random.unit()
        let thresholds = [
            JiraFixtureProportions.emailNull, JiraFixtureProportions.emailBlank, JiraFixtureProportions.emailMalformed,
            JiraFixtureProportions.emailTooLong, JiraFixtureProportions.emailCaseVariantOfPrevious,
            JiraFixtureProportions.emailSameAsPrevious,
        ]
        var emailKind = 0
        var cumulative = 0.0
        for (offset, share) in thresholds.enumerated() {
            cumulative += share
            if emailDraw < cumulative {
                emailKind = offset + 1
                break
            }
        }
        if index == 0, emailKind >= 5 { emailKind = 0 }
        return UserPlan(
            index: index, lowerName: lowerName, userName: userName,
            displayName: "\(first.capitalized1) \(last.capitalized1)", userKey: userKey, hasAppUser: hasAppUser,
            placement: placement, directory: directory, secondActive: secondActive, alsoInactive: alsoInactive,
            isActive: isActive, licenceGroup: placement == .active ? licenceGroup : nil, plainGroup: plainGroup,
            isRequester: isRequester, emailKind: emailKind, siteDraw: random.unit())
    }

    /// The unique address of user `i` (also the one variants of it derive from).
    func uniqueEmail(_ plan: UserPlan) -> String {
        let domain = Self.domains[plan.index % Self.domains.count]
        return "\(plan.lowerName)@\(domain)"
    }

    /// The raw email written for a user; `previous` is the previous user's unique address.
    func email(_ plan: UserPlan, previous: String) -> String? {
        switch plan.emailKind {
        case 1: return nil
        case 2: return "   "
        case 3: return plan.index % 2 == 0 ? "\(plan.lowerName)@example" : "\(plan.lowerName) at example.com"
        case 4: return String(repeating: "x", count: 60) + "\(plan.lowerName)@example.com"
        case 5: return " " + previous.uppercased() + " "
        case 6: return previous
        default: return plan.index % 20 == 0 ? uniqueEmail(plan).uppercased() : uniqueEmail(plan)
        }
    }

    /// Writes the database, and the site accounts to `siteAccounts` when given.
    @discardableResult
    public func generate(
        into writer: some JiraFixtureWriter, siteAccounts: ((SiteAccount) throws -> Void)? = nil
    ) async throws -> JiraFixtureSummary {
        var summary = JiraFixtureSummary()
        try await writer.write { writer in summary = try await generateRows(into: writer, siteAccounts: siteAccounts) }
        return summary
    }

    private func generateRows(
        into writer: some JiraFixtureWriter, siteAccounts: ((SiteAccount) throws -> Void)?
    ) async throws -> JiraFixtureSummary {
        var summary = JiraFixtureSummary()
        var sink = BatchSink(writer: writer, batchSize: batchSize)
        try await writer.createTables()

        // Directories, groups, nesting and licensing rows.
        for (id, name, active, position) in [
            (Self.internalDirectory, "Jira Internal Directory", 1, 0), (Self.ldapDirectory, "Corporate LDAP", 1, 1),
            (Self.legacyDirectory, "Legacy Crowd (retired)", 0, 2), (Self.partnerDirectory, "Partner Directory", 1, 3),
        ] {
            try await sink.add(
                JiraTables.directory, [.integer(id), .text(name), .integer(Int64(active)), .integer(Int64(position))])
        }
        var membershipId: Int64 = 1
        for directory in [Self.internalDirectory, Self.ldapDirectory, Self.legacyDirectory, Self.partnerDirectory] {
            for role in GroupRole.allCases {
                let name = role.name
                try await sink.add(
                    JiraTables.group,
                    [
                        .integer(Self.groupId(directory, role)), .text(name), .text(name.lowercased()), .integer(1),
                        .integer(directory),
                    ])
            }
            for (parent, child) in [
                (GroupRole.serviceDeskUsers, GroupRole.serviceDeskAgents), (.serviceDeskAgents, .supportTier2),
                (.cycleA, .cycleB), (.cycleB, .cycleA),
            ] {
                try await sink.add(
                    JiraTables.membership,
                    Self.membership(
                        id: membershipId, parent: Self.groupId(directory, parent), parentName: parent.name,
                        child: Self.groupId(directory, child), childName: child.name, type: "GROUP_GROUP",
                        directory: directory))
                membershipId += 1
            }
        }
        try await sink.add(
            JiraTables.licenseRoleGroup, [.integer(1), .text("jira-software"), .text("jira-software-users")])
        try await sink.add(
            JiraTables.licenseRoleGroup, [.integer(2), .text("jira-servicedesk"), .text("Jira-ServiceDesk-Users")])
        try await sink.add(
            JiraTables.globalPermission, [.integer(1), .text("ADMINISTER"), .text("jira-administrators")])
        try await sink.add(
            JiraTables.globalPermission, [.integer(2), .text("SYSTEM_ADMIN"), .text("jira-system-administrators")])
        try await sink.add(JiraTables.globalPermission, [.integer(3), .text("USE"), .text("all-staff")])

        // Users, their app_user rows and memberships; pools of indexes for the issues.
        var requesters: [Int32] = []
        var quietCustomers: [Int32] = []
        var licensed: [Int32] = []
        var inactive: [Int32] = []
        var siteSeen = Set<String>()
        var previousEmail = "first.user@example.com"
        for index in 0..<users {
            let plan = plan(index)
            let email = email(plan, previous: previousEmail)
            previousEmail = uniqueEmail(plan)
            summary.users += 1
            let userId = Int64(10_000 + index)
            try await sink.add(
                JiraTables.user,
                Self.userRow(id: userId, directory: plan.directory, plan: plan, email: email, active: plan.isActive))
            summary.directoryUserRows += 1
            if plan.secondActive {
                try await sink.add(
                    JiraTables.user,
                    Self.userRow(
                        id: Int64(10_000 + users * 2 + index), directory: Self.partnerDirectory, plan: plan,
                        email: "\(plan.lowerName)@partner.example.com", active: true))
                summary.directoryUserRows += 1
            }
            if plan.alsoInactive {
                try await sink.add(
                    JiraTables.user,
                    Self.userRow(
                        id: Int64(10_000 + users * 3 + index), directory: Self.legacyDirectory, plan: plan,
                        email: "\(plan.lowerName)@legacy.example.com", active: true))
                summary.directoryUserRows += 1
            }
            if plan.hasAppUser {
                try await sink.add(JiraTables.appUser, [.integer(userId), .text(plan.userKey), .text(plan.lowerName)])
            }
            for role in [plan.licenceGroup, plan.plainGroup].compactMap({ $0 }) where plan.placement == .active {
                try await sink.add(
                    JiraTables.membership,
                    Self.membership(
                        id: membershipId, parent: Self.groupId(plan.directory, role), parentName: role.name,
                        child: userId, childName: plan.userName, type: "GROUP_USER", directory: plan.directory))
                membershipId += 1
            }
            if !plan.isActive { summary.disabled += 1 }
            switch plan.emailKind {
            case 1, 2: summary.missingEmail += 1
            case 3, 4: summary.invalidEmail += 1
            default: break
            }
            switch plan.placement {
            case .inactiveOnly:
                summary.inactiveDirectoryOnly += 1
                inactive.append(Int32(index))
            case .unknownDirectory:
                summary.unknownDirectory += 1
            case .active:
                if plan.licenceGroup != nil {
                    summary.licensed += 1
                    licensed.append(Int32(index))
                } else {
                    summary.customers += 1
                    if plan.isRequester { requesters.append(Int32(index)) } else { quietCustomers.append(Int32(index)) }
                }
                if let siteAccounts, let email, plan.emailKind == 0 {
                    let normalized = email.lowercased()
                    let type: String?
                    if plan.licenceGroup != nil {
                        type =
                            plan.siteDraw < JiraFixtureProportions.siteLicensedHasAtlassianAccount
                            ? "atlassian"
                            : plan.siteDraw < JiraFixtureProportions.siteLicensedHasAtlassianAccount
                                + JiraFixtureProportions.siteLicensedHasCustomerAccount ? "customer" : nil
                    } else {
                        type =
                            plan.siteDraw < JiraFixtureProportions.siteCustomerHasCustomerAccount
                            ? "customer"
                            : plan.siteDraw < JiraFixtureProportions.siteCustomerHasCustomerAccount
                                + JiraFixtureProportions.siteCustomerHasAtlassianAccount ? "atlassian" : nil
                    }
                    if let type, siteSeen.insert(type + " " + normalized).inserted {
                        try siteAccounts(
                            SiteAccount(email: normalized, displayName: plan.displayName, accountType: type))
                        summary.siteAccounts += 1
                    }
                }
            }
        }
        if licensed.isEmpty { licensed.append(0) }
        if requesters.isEmpty { requesters.append(0) }
        if quietCustomers.isEmpty { quietCustomers = requesters }
        if inactive.isEmpty { inactive = requesters }

        // Deleted users: app_user rows with no directory user, and keys with no row at all.
        var deletedKeys: [String] = []
        let deletedAppUsers = max(1, Int(Double(users) * JiraFixtureProportions.deletedAppUsers))
        for number in 0..<deletedAppUsers {
            let key = number % 4 == 0 ? "departed.user\(number)" : "JIRAUSER\(10_000 + users * 4 + number)"
            try await sink.add(
                JiraTables.appUser,
                [.integer(Int64(10_000 + users * 4 + number)), .text(key), .text("departed.user\(number)")])
            deletedKeys.append(key)
        }
        summary.deletedAppUsers = deletedAppUsers
        let unknownKeys = max(1, Int(Double(users) * JiraFixtureProportions.deletedUnknownKeys))
        for number in 0..<unknownKeys { deletedKeys.append("ghost.user\(number)") }
        summary.deletedUnknownKeys = unknownKeys
        let dangling = max(1, Int(Double(users) * JiraFixtureProportions.danglingMemberships))
        for number in 0..<dangling {
            try await sink.add(
                JiraTables.membership,
                Self.membership(
                    id: membershipId, parent: Self.groupId(Self.internalDirectory, .allStaff), parentName: "all-staff",
                    child: Int64(900_000_000 + number), childName: "vanished.user\(number)", type: "GROUP_USER",
                    directory: Self.internalDirectory))
            membershipId += 1
        }
        summary.danglingMemberships = dangling

        // Projects, service desks, custom fields, organizations.
        let serviceProjects = max(3, users / 40_000)
        let softwareProjects = max(2, users / 100_000)
        summary.serviceProjects = serviceProjects
        summary.softwareProjects = softwareProjects
        for number in 0..<(serviceProjects + softwareProjects) {
            let isService = number < serviceProjects
            let key = isService ? "SD\(number + 1)" : "SW\(number - serviceProjects + 1)"
            try await sink.add(
                JiraTables.project,
                [
                    .integer(Int64(10_000 + number)),
                    .text(isService ? "Service desk \(number + 1)" : "Software \(key)"),
                    .text(key), .text(isService ? "service_desk" : "software"),
                ])
            if isService {
                try await sink.add(
                    JiraTables.serviceDesk, [.integer(Int64(number + 1)), .integer(Int64(10_000 + number))])
            }
        }
        let participantsField: Int64 = 10_100
        let organizationsField: Int64 = 10_200
        let otherField: Int64 = 10_300
        try await sink.add(
            JiraTables.customField,
            [
                .integer(participantsField), .text(JiraSchema.requestParticipantsFieldType),
                .text("Request participants"),
            ])
        try await sink.add(
            JiraTables.customField,
            [.integer(organizationsField), .text(JiraSchema.customerOrganizationsFieldType), .text("Organizations")])
        try await sink.add(
            JiraTables.customField,
            [
                .integer(otherField), .text("com.atlassian.jira.plugin.system.customfieldtypes:textfield"),
                .text("Approver notes"),
            ])

        var random = SplitMix64.stream(seed: seed, stream: 2, index: 0)
        let organizations = max(5, users / 1_000)
        for number in 0..<organizations {
            try await sink.add(
                JiraTables.organization, [.integer(Int64(number + 1)), .text("Organization \(number + 1)")])
        }
        let organizationMembers = Int(Double(users) * JiraFixtureProportions.organizationMembersPerUser)
        for number in 0..<organizationMembers {
            let draw = random.uniform(10)
            let member =
                draw < 6 ? random.pick(quietCustomers) : draw < 9 ? random.pick(requesters) : random.pick(licensed)
            try await sink.add(
                JiraTables.organizationMember,
                [
                    .integer(Int64(number + 1)), .integer(Int64(random.uniform(organizations) + 1)),
                    .text(plan(Int(member)).userKey),
                ])
        }
        summary.organizationMembers = organizationMembers

        // Requests and software issues.
        var issueId: Int64 = 10_000
        var valueId: Int64 = 1
        let requests = max(20, Int(Double(users) * JiraFixtureProportions.requestsPerUser))
        var nextUnknownKey = deletedAppUsers  // every unknown key is referenced at least once
        for _ in 0..<requests {
            issueId += 1
            let project = Int64(10_000 + random.uniform(serviceProjects))
            let reporter: String
            let draw = random.unit()
            if draw < JiraFixtureProportions.reporterDeleted {
                if nextUnknownKey < deletedKeys.count {
                    reporter = deletedKeys[nextUnknownKey]
                    nextUnknownKey += 1
                } else {
                    reporter = random.pick(deletedKeys)
                }
            } else if draw < JiraFixtureProportions.reporterDeleted + JiraFixtureProportions.reporterLicensed {
                reporter = plan(Int(random.pick(licensed))).userKey
            } else if draw
                < JiraFixtureProportions.reporterDeleted + JiraFixtureProportions.reporterLicensed
                + JiraFixtureProportions.reporterInactiveDirectory
            {
                reporter = plan(Int(random.pick(inactive))).userKey
            } else {
                reporter = plan(Int(random.pick(requesters))).userKey
            }
            let creator = random.chance(0.9) ? reporter : plan(Int(random.pick(licensed))).userKey
            let assignee: SQLValue = random.chance(0.7) ? .text(plan(Int(random.pick(licensed))).userKey) : .null
            try await sink.add(
                JiraTables.issue, [.integer(issueId), .integer(project), .text(reporter), .text(creator), assignee])
            if random.chance(JiraFixtureProportions.requestsWithParticipants) {
                for _ in 0...random.uniform(3) {
                    let who = random.uniform(10)
                    let participant =
                        who < 7
                        ? random.pick(quietCustomers) : who < 9 ? random.pick(requesters) : random.pick(licensed)
                    try await sink.add(
                        JiraTables.customFieldValue,
                        [
                            .integer(valueId), .integer(issueId), .integer(participantsField),
                            .text(plan(Int(participant)).userKey),
                        ])
                    valueId += 1
                    summary.participants += 1
                }
            }
            if random.chance(JiraFixtureProportions.requestsSharedWithOrganization) {
                try await sink.add(
                    JiraTables.customFieldValue,
                    [
                        .integer(valueId), .integer(issueId), .integer(organizationsField),
                        .text(String(random.uniform(organizations) + 1)),
                    ])
                valueId += 1
            }
            if random.chance(0.05) {
                // A text field holding something that looks like a user key must not count as a reference.
                try await sink.add(
                    JiraTables.customFieldValue,
                    [
                        .integer(valueId), .integer(issueId), .integer(otherField),
                        .text(plan(Int(random.pick(quietCustomers))).userKey),
                    ])
                valueId += 1
            }
        }
        summary.requests = requests
        let softwareIssues = max(10, Int(Double(users) * JiraFixtureProportions.softwareIssuesPerUser))
        for _ in 0..<softwareIssues {
            issueId += 1
            let project = Int64(10_000 + serviceProjects + random.uniform(softwareProjects))
            let reporter = plan(Int(random.pick(licensed))).userKey
            let assignee: SQLValue = random.chance(0.8) ? .text(plan(Int(random.pick(licensed))).userKey) : .null
            try await sink.add(
                JiraTables.issue, [.integer(issueId), .integer(project), .text(reporter), .text(reporter), assignee])
        }
        summary.softwareIssues = softwareIssues
        try await sink.flushAll()
        try await writer.finish()
        return summary
    }

    static func userRow(id: Int64, directory: Int64, plan: UserPlan, email: String?, active: Bool) -> [SQLValue] {
        [
            .integer(id), .integer(directory), .text(plan.userName), .text(plan.lowerName), .integer(active ? 1 : 0),
            .text(plan.displayName), email.map(SQLValue.text) ?? .null, email.map { .text($0.lowercased()) } ?? .null,
        ]
    }

    static func membership(
        id: Int64, parent: Int64, parentName: String, child: Int64, childName: String, type: String, directory: Int64
    ) -> [SQLValue] {
        [
            .integer(id), .integer(parent), .integer(child), .text(type), .text(parentName),
            .text(parentName.lowercased()),
            .text(childName), .text(childName.lowercased()), .integer(directory),
        ]
    }
}

/// Buffers rows per table and writes them a batch at a time, in table order at the end.
struct BatchSink<Writer: JiraFixtureWriter> {
    let writer: Writer
    let batchSize: Int
    var pending: [JiraTable: [[SQLValue]]] = [:]

    init(writer: Writer, batchSize: Int) {
        self.writer = writer
        self.batchSize = batchSize
    }

    mutating func add(_ table: JiraTable, _ row: [SQLValue]) async throws {
        pending[table, default: []].append(row)
        if let rows = pending[table], rows.count >= batchSize {
            pending[table] = []
            try await writer.insert(table, rows: rows)
        }
    }

    mutating func flushAll() async throws {
        for table in JiraTables.all {
            if let rows = pending[table], !rows.isEmpty { try await writer.insert(table, rows: rows) }
        }
        pending = [:]
    }
}

extension String {
    /// The first letter upper-cased.
    var capitalized1: String { prefix(1).uppercased() + dropFirst() }
}
